"""The reward-model and DPO losses equal TRL 1.12's on the same tiny model and batch.

One tiny random LLaMA is exported to a transformers folder; TRL's trainers
compute their loss on that copy (`RewardTrainer.compute_loss` with margins and
reward centering, `DPOTrainer.compute_loss` with an explicit reference model,
sigmoid and IPO), lmforge's objectives on the original, from the same token ids
collated by TRL's own collators. Skipped when TRL is not installed.
"""

from __future__ import annotations

import logging

import pytest
import torch

trl = pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()
logging.getLogger("transformers").setLevel(logging.ERROR)

from lmforge.export.hf import export_hf  # noqa: E402
from lmforge.models import build_model  # noqa: E402
from lmforge.models.heads import WithScalarHead  # noqa: E402
from lmforge.tokenizers.base import SPECIAL_TOKENS, Tokenizer  # noqa: E402
from lmforge.train.dpo import DPOObjective  # noqa: E402
from lmforge.train.reward import RewardObjective  # noqa: E402

V = 300
TINY = dict(vocab_size=V, block_size=48, n_layer=2, n_head=4, d_model=32, init_std=0.3)
PAD = 0


@pytest.fixture(scope="module")
def tokenizer() -> Tokenizer:
    from tokenizers import Tokenizer as HFTokenizer
    from tokenizers import decoders, models, pre_tokenizers, trainers

    engine = HFTokenizer(models.BPE())
    engine.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    engine.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=V, special_tokens=SPECIAL_TOKENS, show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )  # fmt: skip
    engine.train_from_iterator(["the cat sat on the mat.", "2 + 2 = 4"] * 20, trainer)
    return Tokenizer(engine, "bpe", {})


@pytest.fixture(scope="module")
def exported(tokenizer, tmp_path_factory):
    torch.manual_seed(0)
    model = build_model("llama", TINY).eval()
    folder = export_hf(model, tokenizer, tmp_path_factory.mktemp("hf") / "tiny")
    return model, folder


def pairs(seed: int, n: int = 4) -> list[dict]:
    """Random prompt / chosen / rejected ids (no pad id inside), with margins."""
    g = torch.Generator().manual_seed(seed)

    def ids(lo, hi):
        k = int(torch.randint(lo, hi, (1,), generator=g))
        return torch.randint(10, V, (k,), generator=g).tolist()

    return [
        {"prompt_ids": ids(3, 12), "chosen_ids": ids(2, 9), "rejected_ids": ids(2, 9),
         "margin": float(m)}
        for m in torch.rand(n, generator=g) * 2
    ]  # fmt: skip


def lmforge_batch(examples: list[dict], share: bool = False) -> dict[str, torch.Tensor]:
    """PreferenceBatches' batch of the same ids: chosen rows then rejected rows, or (share)
    one row per pair holding its prompt once."""
    from lmforge.data.preference_batches import PairTokens, collate_pairs, collate_shared_pairs

    toks = [
        PairTokens(len(ex["prompt_ids"]), ex["prompt_ids"] + ex["chosen_ids"],
                   ex["prompt_ids"] + ex["rejected_ids"], ex["margin"], "")
        for ex in examples
    ]  # fmt: skip
    collate = collate_shared_pairs if share else collate_pairs
    return collate(toks, range(len(toks)), PAD)


# DPOTrainer tokenizes its dataset at start (it has no pre-tokenized path); the losses
# compared are on `pairs()` through its collator.
TEXT_PAIRS = [{"prompt": "the cat", "chosen": " sat.", "rejected": " ran."}] * 2


def _args(cls, tmp_path, **kw):
    # TRL 1.12 configs default to bf16 autocast (it wraps the reference model): fp32 here.
    return cls(output_dir=str(tmp_path / "trl"), use_cpu=True, report_to="none", bf16=False, **kw)


@pytest.mark.parametrize("share", [False, True], ids=["two-rows", "shared-prompt"])
@pytest.mark.parametrize("center", [None, 0.01])
def test_reward_loss_equals_trl_reward_trainer(exported, tmp_path, center, share):
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    model, folder = exported
    rm = WithScalarHead(model)
    hf = AutoModelForSequenceClassification.from_pretrained(folder, num_labels=1).eval()
    with torch.no_grad():  # HF's score layer has no bias; lmforge's starts at 0
        hf.score.weight.copy_(rm.head.weight)
    hft = AutoTokenizer.from_pretrained(folder)
    examples = [
        {"chosen_ids": e["prompt_ids"] + e["chosen_ids"],
         "rejected_ids": e["prompt_ids"] + e["rejected_ids"], "margin": e["margin"]}
        for e in pairs(1)
    ]  # fmt: skip
    trainer = RewardTrainer(
        model=hf, args=_args(RewardConfig, tmp_path, center_rewards_coefficient=center),
        train_dataset=Dataset.from_list(examples), processing_class=hft,
    )  # fmt: skip
    assert hft.pad_token_id == PAD
    inputs = trainer.data_collator(examples)
    want = trainer.compute_loss(hf, inputs)
    got = RewardObjective(center=center or 0.0).compute_loss(rm, lmforge_batch(pairs(1), share))
    assert abs(float(got.mean) - float(want)) <= 1e-5 * max(1.0, abs(float(want)))


@pytest.mark.parametrize("share", [False, True], ids=["two-rows", "shared-prompt"])
@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_dpo_loss_equals_trl_dpo_trainer(exported, tmp_path, loss_type, share):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    model, folder = exported
    torch.manual_seed(1)
    policy = build_model("llama", TINY).eval()  # a policy that moved away from the reference
    policy_dir = export_hf(policy, None, tmp_path / "policy")
    hf_policy = AutoModelForCausalLM.from_pretrained(policy_dir).eval()
    hf_ref = AutoModelForCausalLM.from_pretrained(folder).eval()
    hft = AutoTokenizer.from_pretrained(folder)
    examples = [{k: v for k, v in e.items() if k != "margin"} for e in pairs(2)]
    trainer = DPOTrainer(
        model=hf_policy, ref_model=hf_ref,
        args=_args(DPOConfig, tmp_path, beta=0.2, loss_type=[loss_type]),
        train_dataset=Dataset.from_list(TEXT_PAIRS), processing_class=hft,
    )  # fmt: skip
    inputs = trainer.data_collator(examples)  # TRL's collator on the ids lmforge gets too
    want = float(trainer.compute_loss(hf_policy, inputs))
    objective = DPOObjective(beta=0.2, loss_type=loss_type, reference=model)
    got = float(objective.compute_loss(policy, lmforge_batch(pairs(2), share)).mean)
    assert abs(got - want) <= 1e-5 * max(1.0, abs(want))


def test_cached_reference_equals_per_batch_reference(exported):
    """Precomputed reference log-probs (the stage's default) give the per-batch loss."""
    from lmforge.train.logprobs import answer_logps

    model, _ = exported
    torch.manual_seed(1)
    policy = build_model("llama", TINY).eval()
    batch = lmforge_batch(pairs(3))
    per_batch = DPOObjective(reference=model).compute_loss(policy, batch)
    with torch.no_grad():
        logps = answer_logps(model, batch)  # (2B,)
    table = torch.stack(logps.chunk(2), dim=1)  # (B, 2)
    cached = DPOObjective(ref_logps=table).compute_loss(policy, batch)
    torch.testing.assert_close(cached.loss_sum, per_batch.loss_sum)


def test_token_logps_match_full_log_softmax(exported):
    from lmforge.train.logprobs import masked_token_logps

    model, _ = exported
    batch = lmforge_batch(pairs(4))
    ids, mask = batch["ids"], batch["response_mask"]
    with torch.no_grad():
        got = masked_token_logps(model, ids, mask)
        logits, _ = model(ids)
        full = torch.log_softmax(logits.float(), -1)[:, :-1].gather(-1, ids[:, 1:, None])[..., 0]
    want = torch.cat([torch.zeros(ids.shape[0], 1), full], dim=1) * mask
    want[:, 0] = 0
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
