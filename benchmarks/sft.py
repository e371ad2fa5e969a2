"""SFT throughput on CPU: lmforge's SFT (packing + document masks) vs TRL's `SFTTrainer`.

Both sides fine-tune the same tiny LLaMA (d_model 256, 6 layers, 4 heads, fp32,
context 256, same initial weights) with the same tokenizer on the same
conversations (`lmforge world --size small --seed 0`, instructions/train.jsonl),
loss on assistant tokens only, the same AdamW (lr, betas, weight decay, clipping,
constant schedule, no warmup), the same effective batch (8 rows × 256 tokens) and
the same torch threads:

* lmforge: `PackedChatBatches` (greedy packing, one (B, 1, T, T) document mask)
  through the one loop, `lmforge.train.loop.train` with `SFTObjective`;
* TRL `SFTTrainer` with `packing=True` (best-fit decreasing), which in TRL 1.12
  always trains padding-free: the batch's rows are flattened into one sequence
  whose `position_ids` restart at every conversation (transformers then builds a
  block-diagonal mask), `assistant_only_loss=True` through the exported chat
  template with `{% generation %}` marks (lmforge's token ids and loss mask
  exactly: checked at start-up), its default `chunked_nll` loss;
* with `--padded`, also TRL `SFTTrainer` with `packing=False` ("TRL padded"): one
  conversation per row, padded to the longest in the batch, as many conversations
  per step as lmforge's packed rows hold: TRL's other correct configuration
  (no flattened sequence; padding instead).

The lmforge model is exported with `lmforge.export.hf.export_hf`; TRL loads that
folder (weights and tokenizer), so both start from identical weights. Rounds are
interleaved (lmforge, TRL, [TRL padded,] then again) so that load from other jobs
on a shared machine hits all of them alike; each step is timed from one batch
request to the next (data, forward, backward, optimizer, logging); a rate is the
mean count per step over the median step time, both over the timed steps of all
rounds (after `--warmup` untimed steps per round); each round has its own data order (seed = round), the same for both sides.
Tokens/s counts every non-pad token in the batch; assistant tokens/s the trained
targets. Loss: in the last round lmforge trains on for `--loss-steps` steps and
TRL until it has seen at least as many conversations (its packing fits a few more
into a step), and both final models are scored by the same code (lmforge's
`SFTObjective`, TRL's weights loaded back) on the first 256 conversations of
instructions/val.jsonl. The step is
then split into forward, backward and optimizer for each side, and a floor is
timed: the lmforge step's matrix products and attention alone, and the CPU's
fp32 matmul rate (best 2048² product) to compare machines by.

Install the peer into its own virtual environment (TRL is not a dependency of
lmforge; this keeps the project's pins untouched):

    # TRL is in the `peers` extra (make install): .venv/bin/python benchmarks/sft.py runs it.
    # The separate venv below is how the published numbers were made:
    python3 -m venv .venv-bench-trl
    .venv-bench-trl/bin/pip install torch==2.13.0
    .venv-bench-trl/bin/pip install trl==1.12.0 transformers==5.24.0 datasets==5.0.1 \\
        accelerate==1.15.0 numpy==2.4.6 tokenizers==0.23.3 sentencepiece==0.2.3 \\
        safetensors==0.8.0 tqdm==4.70.1 pyyaml==6.0.4 snowballstemmer==3.1.1 \\
        pymorphy3==2.0.6 simplemma==2.0.0 pyarrow==26.0.1 selectolax==1.0.2 \\
        matplotlib==3.11.2 tensorboard==2.21.0
    .venv-bench-trl/bin/pip install -e . --no-deps

Run (about 4 minutes on 2 cores; `--quick` is a 1-2 minute smoke run that
writes no result):

    .venv-bench-trl/bin/python benchmarks/sft.py
    .venv-bench-trl/bin/python benchmarks/sft.py --quick
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from _bench import best_time, matmul_attention_floor_s, print_table, write_result  # noqa: E402

# Scripts here are named after what they measure: keep this folder off the import
# path so that it cannot shadow packages of the same name (this file is `sft`).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

# Nothing may be fetched: the tokenizer, model and data are all local.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402

MODEL = dict(n_layer=6, n_head=4, d_model=256, dropout=0.0, tie_embeddings=True)
VOCAB = 2048  # BPE on the world's pretraining text
VAL = 256  # validation conversations scored after training


@dataclasses.dataclass
class Setup:
    """Everything both sides share: data, tokenizer, initial weights, the exported folder."""

    work: Path
    tok: Any
    mcfg: Any  # lmforge LlamaConfig
    init_state: dict[str, torch.Tensor]
    hf_dir: Path
    train_convs: list[Any]
    train_ex: list[Any]  # lmforge ChatTokens of train_convs
    val_batches: list[dict[str, torch.Tensor]]
    pad: int
    parity: dict[str, Any]


@dataclasses.dataclass
class StepLog:
    """Per optimizer step: non-pad tokens, trained (assistant) tokens, conversations, loss.

    `seconds[k]` is step k's duration, known for every step but the last (a step
    ends where the next one asks for its batch), so `seconds` is one shorter.
    """

    seconds: list[float] = dataclasses.field(default_factory=list)
    tokens: list[int] = dataclasses.field(default_factory=list)
    targets: list[int] = dataclasses.field(default_factory=list)
    convs: list[int] = dataclasses.field(default_factory=list)
    losses: list[float] = dataclasses.field(default_factory=list)

    def timed(self, warmup: int, steps: int) -> StepLog:
        """The steps warmup .. warmup+steps-1 (those with a measured duration)."""
        sl = slice(warmup, warmup + steps)
        return StepLog(*(getattr(self, f.name)[sl] for f in dataclasses.fields(self)))

    def extend(self, other: StepLog) -> None:
        for f in dataclasses.fields(self):
            getattr(self, f.name).extend(getattr(other, f.name))


def rate(counts: list[int], seconds: list[float]) -> float:
    """Tokens per step (mean) / seconds per step (median).

    The median step time shrugs off the steps that other jobs slowed down; the
    counts are averaged, since batches differ in content (a median of per-step
    ratios would follow their skew, not the speed).
    """
    return statistics.mean(counts) / statistics.median(seconds)


# -- shared set-up ------------------------------------------------------------------------
def prepare(work: Path, seq_len: int, batch: int) -> Setup:
    """World, tokenizer, model (seed 0), its HF export, rendered train and val data."""
    from lmforge.data.instructions import read_instructions
    from lmforge.data.sft import PackedChatBatches, render_examples
    from lmforge.data.world.build import build_world
    from lmforge.data.world.config import WorldConfig
    from lmforge.export.hf import export_hf
    from lmforge.models import build_model
    from lmforge.tokenizers import TokenizerConfig, train_tokenizer

    world = work / "world"
    if not (world / "manifest.json").exists():
        build_world(WorldConfig(out=str(world), size="small", seed=0, force=True))
    tok = train_tokenizer(
        TokenizerConfig(kind="bpe", vocab_size=VOCAB), [world / "pretrain/train.txt"]
    )
    torch.manual_seed(0)
    model = build_model("llama", dict(vocab_size=tok.vocab_size, block_size=seq_len, **MODEL))
    hf_dir = export_hf(model, tok, work / "hf", force=True)
    train_convs = read_instructions([world / "instructions/train.jsonl"]).conversations
    # The first VAL conversations of val.jsonl (its families are interleaved): ~12k tokens.
    val_convs = read_instructions([world / "instructions/val.jsonl"]).conversations[:VAL]
    train_ex, _ = render_examples(tok, train_convs, seq_len)
    val_ex, _ = render_examples(tok, val_convs, seq_len)
    pad = tok.pad_id if tok.pad_id is not None else tok.eos_id
    val = PackedChatBatches(val_ex, 2 * batch, seq_len, pad_id=pad, shuffle=False)
    setup = Setup(
        work, tok, model.config, {k: v.clone() for k, v in model.state_dict().items()}, hf_dir,
        train_convs, train_ex, val.eval_batches(), pad, {},
    )  # fmt: skip
    setup.parity = check_parity(setup, model)
    return setup


def messages(conv: Any) -> list[dict[str, str]]:
    return [{"role": m.role, "content": m.content} for m in conv.messages]


def hf_tokenizer(setup: Setup):
    """The exported tokenizer with the training template ({% generation %} marks) set."""
    from transformers import AutoTokenizer

    from lmforge.tokenizers.chat import jinja_chat_template

    hft = AutoTokenizer.from_pretrained(setup.hf_dir)
    hft.chat_template = jinja_chat_template(setup.tok, generation_marks=True)
    return hft


def hf_model(setup: Setup):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(
        setup.hf_dir, dtype=torch.float32, attn_implementation="sdpa"
    )


def check_parity(setup: Setup, model: torch.nn.Module, n: int = 200) -> dict[str, Any]:
    """Same ids and loss mask through HF's chat template; same loss from both models."""
    from lmforge.data.sft import collate_rows

    hft = hf_tokenizer(setup)
    same = 0
    for conv, ex in zip(setup.train_convs[:n], setup.train_ex[:n]):
        out = hft.apply_chat_template(
            messages(conv), return_dict=True, return_assistant_tokens_mask=True
        )
        same += out["input_ids"] == ex.ids and out["assistant_masks"] == ex.loss_mask
    if same != n:
        raise SystemExit(
            f"sft benchmark: HF's chat template differs from lmforge's on {n - same}/{n}"
        )
    # One conversation through both models: the exported weights compute the same loss.
    ex = setup.train_ex[0]
    b = collate_rows([ex], [[0]], len(ex.ids) - 1, setup.pad)
    hf = hf_model(setup).eval()
    with torch.no_grad():
        _, ours = model.eval()(b["ids"], targets=b["targets"])
        labels = torch.tensor([ex.ids]).masked_fill(torch.tensor([ex.loss_mask]) == 0, -100)
        theirs = hf(input_ids=torch.tensor([ex.ids]), labels=labels).loss
    if abs(ours.item() - theirs.item()) > 1e-4:
        raise SystemExit(
            f"sft benchmark: loss {ours.item():.6f} (lmforge) != {theirs.item():.6f} (HF)"
        )
    return {
        "conversations_checked": n,
        "lmforge_loss": ours.item(),
        "hf_loss": theirs.item(),
        "parameters": sum(p.numel() for p in model.parameters()),  # the tied matrix once
    }


def val_loss(setup: Setup, state: dict[str, torch.Tensor]) -> float:
    """Mean loss per assistant token on instructions/val.jsonl of an lmforge state dict."""
    from lmforge.eval.perplexity import mean_loss
    from lmforge.models import build_model
    from lmforge.train.sft import SFTObjective

    model = build_model("llama", setup.mcfg)
    model.load_state_dict(state)
    model.eval()
    with torch.no_grad():
        loss, _ = mean_loss(model, SFTObjective(), setup.val_batches, device="cpu")
    return loss


def hf_to_lmforge_state(setup: Setup, hf) -> dict[str, torch.Tensor]:
    from lmforge.export.hf import from_hf_state_dict

    return from_hf_state_dict(hf.state_dict(), setup.mcfg, "TRL model")


# -- lmforge ------------------------------------------------------------------------------
class TimedBatches:
    """PackedChatBatches that stamps each request (step boundaries) and counts the batch."""

    def __init__(self, inner, pad: int, log: StepLog):
        self.inner, self.pad, self.log, self.stamps = inner, pad, log, []

    def next_batch(self):
        from lmforge.models.masks import document_starts

        self.stamps.append(time.perf_counter())
        b = self.inner.next_batch()
        real = b["ids"] != self.pad  # (B, T)
        self.log.tokens.append(int(real.sum()))
        self.log.targets.append(int((b["targets"] != -100).sum()))
        self.log.convs.append(int((document_starts(b["doc_ids"]) & real).sum()))
        return b

    def state_dict(self):
        return self.inner.state_dict()

    def load_state_dict(self, state):
        self.inner.load_state_dict(state)


def train_config(args, steps: int):
    from lmforge.train.config import TrainConfig

    return TrainConfig(
        batch_size=args.batch, max_steps=steps, lr=args.lr, min_lr=args.lr, warmup=0,
        schedule="constant", weight_decay=0.1, betas=(0.9, 0.95), grad_clip=1.0, dtype="fp32",
        compile=False, eval_every=0, save_every=0, log_every=steps, device="cpu",
        parallel="none", threads=args.threads, seed=0,
    )  # fmt: skip


def run_lmforge(
    setup: Setup, args, steps: int, seed: int
) -> tuple[StepLog, dict[str, torch.Tensor]]:
    """`steps` + 1 optimizer steps through lmforge's loop; (their log, the trained weights)."""
    from lmforge.data.sft import PackedChatBatches
    from lmforge.models import build_model
    from lmforge.train.hooks import LoopHook
    from lmforge.train.loop import train
    from lmforge.train.sft import SFTObjective

    log = StepLog()

    class Losses(LoopHook):
        def after_step(self, loop, record):
            log.losses.append(float(record.loss_sum) / max(1, int(record.n_tokens)))

    model = build_model("llama", setup.mcfg)
    model.load_state_dict(setup.init_state)
    inner = PackedChatBatches(setup.train_ex, args.batch, args.seq_len, pad_id=setup.pad, seed=seed)
    src = TimedBatches(inner, setup.pad, log)
    train(model, SFTObjective(), src, train_config(args, steps + 1), run_dir=None, hooks=[Losses()])
    st = src.stamps  # st[k]: start of step k; the extra last step closes step `steps - 1`
    log.seconds = [st[k + 1] - st[k] for k in range(steps)]
    return log, {k: v.detach().clone() for k, v in model.state_dict().items()}


# -- TRL ----------------------------------------------------------------------------------
def run_trl(
    setup: Setup, args, steps: int, seed: int, *, packing: bool, rows: int, until_convs: int = 0
) -> tuple[StepLog, Any]:
    """TRL SFTTrainer for at least `steps` + 1 steps (and until `until_convs` conversations)."""
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import SFTConfig, SFTTrainer

    log = StepLog()
    stamps: list[float] = []

    class Counting(SFTTrainer):
        def compute_loss(self, model, inputs, *a, **kw):
            if model.training:
                labels = inputs["labels"]
                if "position_ids" in inputs:  # padding-free: one flat row, no padding
                    log.tokens.append(int(inputs["position_ids"].numel()))
                    log.convs.append(int((inputs["position_ids"] == 0).sum()))
                else:
                    log.tokens.append(int(inputs["attention_mask"].sum()))
                    log.convs.append(int(inputs["attention_mask"].shape[0]))
                log.targets.append(int((labels[:, 1:] != -100).sum()))  # HF shifts the labels
            return super().compute_loss(model, inputs, *a, **kw)

    class Clock(TrainerCallback):
        def on_step_begin(self, a, state, control, **kw):
            stamps.append(time.perf_counter())

        def on_step_end(self, a, state, control, **kw):
            if state.global_step >= steps + 1 and sum(log.convs) >= until_convs:
                control.should_training_stop = True

    cfg = SFTConfig(
        output_dir=str(setup.work / "trl"), max_steps=10 * (steps + 1),
        per_device_train_batch_size=rows, gradient_accumulation_steps=1,
        learning_rate=args.lr, lr_scheduler_type="constant", warmup_steps=0,
        weight_decay=0.1, adam_beta1=0.9, adam_beta2=0.95, adam_epsilon=1e-8,
        max_grad_norm=1.0, optim="adamw_torch_fused", bf16=False, fp16=False,
        gradient_checkpointing=False, use_cpu=True, packing=packing, max_length=args.seq_len,
        assistant_only_loss=True, report_to="none", save_strategy="no", eval_strategy="no",
        logging_steps=1, seed=seed, data_seed=seed, dataloader_num_workers=0, disable_tqdm=True,
    )  # fmt: skip
    ds = Dataset.from_list([{"messages": messages(c)} for c in setup.train_convs])
    trainer = Counting(
        model=hf_model(setup), args=cfg, train_dataset=ds, processing_class=hf_tokenizer(setup),
        callbacks=[Clock()],
    )  # fmt: skip
    trainer.remove_callback(PrinterCallback)  # it prints every step's log dict
    trainer.train()
    log.losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    log.seconds = [stamps[k + 1] - stamps[k] for k in range(len(stamps) - 1)]
    return log, trainer.model


# -- where the time goes --------------------------------------------------------------------
def split_lmforge(setup: Setup, args, reps: int) -> dict[str, float]:
    """Median seconds of forward (with loss), backward and optimizer step on packed batches."""
    from lmforge.data.sft import PackedChatBatches
    from lmforge.models import build_model
    from lmforge.train.optim import build_optimizer
    from lmforge.train.sft import SFTObjective

    model = build_model("llama", setup.mcfg).train()
    model.load_state_dict(setup.init_state)
    opt = build_optimizer(model, args.lr, 0.1, (0.9, 0.95))
    src = PackedChatBatches(setup.train_ex, args.batch, args.seq_len, pad_id=setup.pad, seed=1)
    return _split(
        lambda b: SFTObjective().compute_loss(model, b).loss_sum, src.next_batch, opt, reps
    )


def split_trl(setup: Setup, args, reps: int, *, packing: bool, rows: int) -> dict[str, float]:
    """The same split for TRL's model on TRL's collated batches (its chunked_nll loss included)."""
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    cfg = SFTConfig(
        output_dir=str(setup.work / "trl"), per_device_train_batch_size=rows,
        learning_rate=args.lr, weight_decay=0.1, adam_beta2=0.95, optim="adamw_torch_fused",
        bf16=False, gradient_checkpointing=False, use_cpu=True, packing=packing,
        max_length=args.seq_len, assistant_only_loss=True, report_to="none", seed=1,
        disable_tqdm=True,
    )  # fmt: skip
    ds = Dataset.from_list([{"messages": messages(c)} for c in setup.train_convs])
    trainer = SFTTrainer(
        model=hf_model(setup), args=cfg, train_dataset=ds, processing_class=hf_tokenizer(setup)
    )
    trainer.model.train()
    trainer.create_optimizer()
    it = iter(trainer.get_train_dataloader())

    def loss(b):
        return trainer.compute_loss(trainer.model, dict(b))

    return _split(loss, lambda: next(it), trainer.optimizer, reps)


def _split(loss_fn, next_batch, opt, reps: int) -> dict[str, float]:
    parts: dict[str, list[float]] = {"forward": [], "backward": [], "optimizer": []}
    for r in range(reps + 1):
        b = next_batch()
        t0 = time.perf_counter()
        loss = loss_fn(b)
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        opt.step()
        opt.zero_grad(set_to_none=True)
        t3 = time.perf_counter()
        if r:  # the first is a warm-up
            for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
                parts[k].append(v)
    return {k: statistics.median(v) for k, v in parts.items()}


def step_floor_s(setup: Setup, args, reps: int) -> float:
    """Best time of the lmforge step's matmuls and attention alone (train_cpu.py's floor)."""
    from lmforge.models import build_model

    model = build_model("llama", setup.mcfg)
    return matmul_attention_floor_s(
        model, args.batch, args.seq_len, setup.mcfg.n_head, setup.mcfg.n_layer, reps
    )


# -- report -------------------------------------------------------------------------------
def summary(name: str, log: StepLog) -> dict[str, Any]:
    return {
        "impl": name,
        "steps_timed": len(log.seconds),
        "step_s_median": statistics.median(log.seconds),
        "tok_s": rate(log.tokens, log.seconds),
        "assistant_tok_s": rate(log.targets, log.seconds),
        # The fastest step: on a shared machine load only slows a step down.
        "tok_s_best_step": max(t / s for t, s in zip(log.tokens, log.seconds)),
        "step_s_all": [round(x, 4) for x in log.seconds],
        "tokens_per_step": statistics.mean(log.tokens),
        "assistant_tokens_per_step": statistics.mean(log.targets),
        "conversations_per_step": statistics.mean(log.convs),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seq-len", type=int, default=256, help="tokens per row (model context)")
    ap.add_argument("--batch", type=int, default=8, help="rows per step")
    ap.add_argument("--steps", type=int, default=5, help="timed steps per round and side")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first, per round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds")
    ap.add_argument("--loss-steps", type=int, default=20,
                    help="steps of the last round, whose models' losses are compared")  # fmt: skip
    ap.add_argument("--threads", type=int, default=2, help="torch threads, both sides")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--padded", action="store_true", help="also time TRL with packing=False")
    ap.add_argument("--work", help="folder for the world, tokenizer and export (default: temp)")
    ap.add_argument("--tag", default="", help="suffix of the result file (sft_<tag>.json)")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 round, 2 steps, no JSON")
    args = ap.parse_args()
    try:
        import trl
    except ImportError:
        print("sft benchmark: trl is not installed here; install it as this script's docstring "
              "says and run with .venv-bench-trl/bin/python")  # fmt: skip
        raise SystemExit(2) from None
    import transformers

    if args.quick:
        args.steps, args.warmup, args.rounds, args.loss_steps = 2, 1, 1, 0
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore")
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("trl").setLevel(logging.ERROR)
    import datasets

    datasets.disable_progress_bars()

    tmp = None
    if args.work:
        work = Path(args.work)
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="lmforge-bench-sft-")
        work = Path(tmp.name)
    t0 = time.perf_counter()
    setup = prepare(work, args.seq_len, args.batch)
    print(f"set-up {time.perf_counter() - t0:.0f} s: vocab {setup.tok.vocab_size}, "
          f"{setup.parity['parameters']:,} parameters, "
          f"{len(setup.train_convs):,} conversations; HF chat template = lmforge's ids and mask "
          f"on {setup.parity['conversations_checked']}, same initial loss "
          f"({setup.parity['lmforge_loss']:.5f} vs {setup.parity['hf_loss']:.5f})", flush=True)  # fmt: skip

    variants = ["lmforge", "TRL packed"] + (["TRL padded"] if args.padded else [])
    timed = {v: StepLog() for v in variants}
    round_s: dict[str, list[float]] = {v: [] for v in variants}  # median s/step per round
    last: dict[str, StepLog] = {}
    states: dict[str, dict[str, torch.Tensor]] = {}
    n = args.warmup + args.steps
    rows_padded = 0
    for r in range(args.rounds):
        # Each round its own data order (more distinct batches); the last one trains on for
        # --loss-steps steps, and its models are the ones scored.
        k = n if r < args.rounds - 1 else max(n, args.loss_steps)
        lm, lm_state = run_lmforge(setup, args, k, seed=r)
        convs = sum(lm.convs)
        rows_padded = rows_padded or round(statistics.mean(lm.convs))
        tp, tp_model = run_trl(setup, args, n, r, packing=True, rows=args.batch, until_convs=convs)
        got = {"lmforge": lm, "TRL packed": tp}
        if args.padded:
            pd, pd_model = run_trl(
                setup, args, n, r, packing=False, rows=rows_padded, until_convs=convs
            )
            got["TRL padded"] = pd
        for v, log in got.items():
            timed[v].extend(log.timed(args.warmup, args.steps))
            round_s[v].append(statistics.median(log.seconds[args.warmup : n]))
        last = got
        states = {"lmforge": lm_state, "TRL packed": hf_to_lmforge_state(setup, tp_model)}
        if args.padded:
            states["TRL padded"] = hf_to_lmforge_state(setup, pd_model)
        print(f"round {r + 1}/{args.rounds}: " + ", ".join(
            f"{v} {round_s[v][-1]:.2f} s/step" for v in got), flush=True)  # fmt: skip

    reps = 2 if args.quick else 4
    split = {"lmforge": split_lmforge(setup, args, reps),
             "TRL packed": split_trl(setup, args, reps, packing=True, rows=args.batch)}  # fmt: skip
    if args.padded:
        split["TRL padded"] = split_trl(setup, args, reps, packing=False, rows=rows_padded)
    floor_s = step_floor_s(setup, args, reps)
    n2 = 2048
    a, b = torch.randn(n2, n2), torch.randn(n2, n2)
    gflops = 2 * n2**3 / best_time(lambda: a @ b, 5, warmup=1) / 1e9
    val0 = val_loss(setup, setup.init_state)
    results = []
    for v in variants:
        s = summary(v, timed[v])
        log = last[v]
        s["conversations_seen"] = sum(log.convs)
        s["steps_run"] = len(log.convs)
        s["train_loss_last_3"] = statistics.mean(log.losses[-3:])
        s["val_loss"] = val_loss(setup, states[v])
        s["split_s"] = split[v]
        s["round_step_s"] = round_s[v]
        results.append(s)
    base = {r["impl"]: r for r in results}
    lm = base["lmforge"]
    floor_tok_s = lm["tokens_per_step"] / floor_s
    rows = []
    for s in results:
        sp = s["split_s"]
        rows.append([
            s["impl"], f"{s['tok_s']:,.0f}", f"{s['assistant_tok_s']:,.0f}",
            f"{s['step_s_median']:.2f}",
            f"{sp['forward']:.2f} / {sp['backward']:.2f} / {sp['optimizer']:.3f}",
            f"{s['tokens_per_step']:,.0f}", f"{s['conversations_seen']:,} ({s['steps_run']})",
            f"{s['train_loss_last_3']:.3f}", f"{s['val_loss']:.4f}",
        ])  # fmt: skip
    rows.append(["floor: lmforge step's matmuls + attention", f"{floor_tok_s:,.0f}", "-",
                 f"{floor_s:.2f}", "-", f"{lm['tokens_per_step']:,.0f}", "-", "-", "-"])  # fmt: skip
    print(f"{args.batch} rows × {args.seq_len} tokens per step, lr {args.lr}, fp32, "
          f"{torch.get_num_threads()} threads; rate = mean tokens per step / median step time over {args.rounds} rounds × "
          f"{args.steps} timed steps after {args.warmup} warm-up steps; fp32 2048² matmul {gflops:,.0f} "
          f"GFLOP/s; val loss of the initial model {val0:.4f}")  # fmt: skip
    print_table(["impl", "tok/s", "assistant tok/s", "s/step", "fwd / bwd / opt s",
                 "tokens/step", "conversations (steps)", "train loss (last 3)", "val loss"], rows)  # fmt: skip
    ratios = {
        v: {
            "tok_s": lm["tok_s"] / base[v]["tok_s"],
            "assistant_tok_s": lm["assistant_tok_s"] / base[v]["assistant_tok_s"],
        }
        for v in variants[1:]
    }
    print("ratio lmforge / TRL — " + "; ".join(
        f"{v}: tokens/s {x['tok_s']:.2f}×, assistant tokens/s {x['assistant_tok_s']:.2f}×"
        for v, x in ratios.items()
    ))  # fmt: skip
    if not args.quick:
        payload = {
            "config": {
                "model": {**MODEL, "vocab_size": setup.tok.vocab_size, "block_size": args.seq_len},
                "seq_len": args.seq_len, "batch_rows": args.batch, "steps": args.steps,
                "warmup": args.warmup, "rounds": args.rounds, "loss_steps": args.loss_steps,
                "lr": args.lr,
                "threads": torch.get_num_threads(), "trl": trl.__version__,
                "transformers": transformers.__version__, "trl_padded_rows": rows_padded,
            },
            "parity": setup.parity,
            "val_loss_initial": val0,
            "matmul_fp32_gflops": gflops,
            "floor_s": floor_s,
            "floor_tok_s": floor_tok_s,
            "ceiling_vs": {v: floor_tok_s / base[v]["tok_s"] for v in variants[1:]},
            "results": results,
            "ratio": ratios,
        }  # fmt: skip
        name = "sft" + (f"_{args.tag}" if args.tag else "")
        print(f"wrote {write_result(name, payload)}")
    if tmp is not None:
        tmp.cleanup()


if __name__ == "__main__":
    main()
