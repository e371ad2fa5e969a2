"""RNN and BERT through the real stages: `pretrain --arch rnn|bert`, resume, fill-mask, export hf."""

from __future__ import annotations

import contextlib
import io
import json
import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import assert_clean_error, run_lmforge
from safetensors.torch import load_file

from lmforge.config import build_config

PEOPLE = ["anna", "boris", "clara", "dmitri", "elena", "felix", "greta", "hugo"]
CITIES = ["paris", "oslo", "lima", "cairo"]
HOME = {p: CITIES[i % len(CITIES)] for i, p in enumerate(PEOPLE)}
TEMPLATES = [
    "{p} lives in {c}.",
    "{p} has a house in {c}.",
    "{p} went home to {c}.",
    "in {c} lives {p}.",
    "{p} was born in {c} and still lives in {c}.",
]


@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    """Facts 'person lives in city' in several phrasings, word tokenizer, prepared shards."""
    from lmforge.data.prepare import prepare
    from lmforge.data.prepare_config import PrepareConfig
    from lmforge.tokenizers.train import TokenizerConfig, save_tokenizer_dir, train_tokenizer

    d = tmp_path_factory.mktemp("facts")
    rng = random.Random(0)
    docs = []
    for _ in range(600):
        p = rng.choice(PEOPLE)
        n = rng.randint(1, 3)
        docs.append(" ".join(rng.choice(TEMPLATES).format(p=p, c=HOME[p]) for _ in range(n)))
    (d / "corpus.txt").write_text("\n\n".join(docs) + "\n", encoding="utf-8")
    tok = train_tokenizer(
        TokenizerConfig(kind="word", vocab_size=64, min_frequency=1), [d / "corpus.txt"]
    )
    assert tok.mask_id == 8
    save_tokenizer_dir(tok, d / "tok")
    cfg = build_config(
        PrepareConfig,
        overrides=dict(
            tokenizer=str(d / "tok"),
            input=[str(d / "corpus.txt")],
            out=str(d / "shards"),
            workers=1,
        ),
    )
    prepare(cfg)
    return d / "shards"


def _pretrain(shards: Path, out: Path, arch: str, steps: int, resume: bool = False, **kw):
    from lmforge.stages.pretrain import pretrain
    from lmforge.stages.pretrain_config import PretrainConfig

    fields = dict(
        arch=arch,
        preset="tiny",
        data=str(shards),
        out=str(out),
        max_steps=steps,
        batch_size=8,
        seq_len=16,
        warmup=5,
        lr=3e-3,
        min_lr=3e-4,
        eval_every=0,
        save_every=0,
        log_every=5,
        eval_batches=2,
        threads=1,
        samples=1,
        sample_tokens=4,
        dtype="fp32",
    )
    fields.update(kw)
    return pretrain(build_config(PretrainConfig, overrides=fields), resume=resume)


def _cli(*args) -> SimpleNamespace:
    """`lmforge ARGS` in this process (no interpreter start-up): returncode, stdout, stderr."""
    from lmforge.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
            rc = 0
        except SystemExit as e:
            rc = e.code or 0
    return SimpleNamespace(returncode=rc, stdout=out.getvalue(), stderr=err.getvalue())


def _losses(run: Path) -> list[float]:
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in rows if "loss" in r]


# --- RNN through the one loop -------------------------------------------------------


@pytest.mark.parametrize("carry", [True, False])
def test_pretrain_rnn_through_the_loop(shards, tmp_path, carry):
    res = _pretrain(shards, tmp_path / "rnn", "rnn", 60, carry_state=carry)
    losses = _losses(tmp_path / "rnn")
    assert losses[0] > losses[-1] + 0.5, losses
    assert res.val["val_loss"] < losses[0]
    ckpt = tmp_path / "rnn" / "checkpoints" / "step_60"
    # The carried hidden state is part of the checkpoint (objective.pt) when carried.
    saved = torch.load(ckpt / "objective.pt", weights_only=True)["ranks"][0]
    assert ("state" in saved) == carry
    if carry:
        assert saved["state"]["h"].shape == (2, 8, 64)  # (n_layer, B, d_model)
    report = (tmp_path / "rnn" / "report.md").read_text()
    assert "rnn" in report


def test_rnn_resume_with_carried_state_is_exact(shards, tmp_path):
    _pretrain(shards, tmp_path / "full", "rnn", 20, save_every=10)
    # As if the run had died after step 10: resume from the step-10 checkpoint.
    shutil.copytree(tmp_path / "full", tmp_path / "split")
    shutil.rmtree(tmp_path / "split" / "checkpoints" / "step_20")
    (tmp_path / "split" / "latest").write_text("step_10\n")
    _pretrain(shards, tmp_path / "split", "rnn", 20, resume=True, save_every=10)
    a = load_file(tmp_path / "full" / "checkpoints" / "step_20" / "model.safetensors")
    b = load_file(tmp_path / "split" / "checkpoints" / "step_20" / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


# --- BERT: pretrain, fill-mask, export ---------------------------------------------


@pytest.fixture(scope="module")
def bert_run(shards, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bert") / "run"
    _pretrain(shards, out, "bert", 40)
    return out


def test_pretrain_bert_writes_a_masked_lm_run(bert_run):
    losses = _losses(bert_run)
    assert losses[0] > losses[-1], losses
    rows = [json.loads(x) for x in (bert_run / "metrics.jsonl").read_text().splitlines()]
    assert any("train_mlm_acc" in r for r in rows)
    val = [r for r in rows if "val_loss" in r]
    assert val and "val_ppl" not in val[-1]  # a masked-LM loss is not a perplexity
    assert (bert_run / "checkpoints" / "step_40" / "objective.pt").is_file()  # mask RNG


def test_fill_mask_cli_prints_top_k_with_probabilities(bert_run):
    r = run_lmforge("fill-mask", "--run", bert_run, "anna lives in [MASK].", "--top-k", "3")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 3
    probs = [float(line.split()[1]) for line in lines]
    assert all(0.0 < p <= 1.0 for p in probs) and probs == sorted(probs, reverse=True)
    assert all("anna lives in" in line for line in lines)
    two = _cli("fill-mask", "--run", bert_run, "[MASK] lives in [MASK].", "--top-k", "2")
    assert two.returncode == 0, two.stderr
    out = two.stdout.splitlines()
    assert out[0] == "[MASK] 1:" and out[3] == "[MASK] 2:" and out[-1].startswith("best: ")


def test_fill_mask_cli_errors_are_one_line(bert_run, shards, tmp_path):
    assert_clean_error(_cli("fill-mask", "--run", bert_run, "no blank here"), "[MASK]")
    assert_clean_error(_cli("fill-mask", "--run", bert_run, "a [MASK]", "--top-k", "0"), "top-k")
    assert_clean_error(_cli("fill-mask", "--run", tmp_path / "nope", "a [MASK]"), "nope")
    _pretrain(shards, tmp_path / "rnn", "rnn", 2, samples=0)
    assert_clean_error(_cli("fill-mask", "--run", tmp_path / "rnn", "a [MASK]"), "needs a BERT")


def test_export_hf_of_a_bert_run_matches_transformers(bert_run, tmp_path):
    transformers = pytest.importorskip("transformers")
    from lmforge.models import load_model
    from lmforge.models.bert import encode_with_masks
    from lmforge.tokenizers.base import Tokenizer

    r = _cli("export", "hf", "--run", bert_run, "--out", tmp_path / "hf")
    assert r.returncode == 0, r.stderr
    hf = transformers.BertForMaskedLM.from_pretrained(tmp_path / "hf").eval()
    hf_tok = transformers.AutoTokenizer.from_pretrained(tmp_path / "hf")
    assert hf_tok.mask_token == "<|mask|>" and hf_tok.mask_token_id == 8
    ours = load_model(bert_run / "checkpoints" / "step_40").eval()
    ids = torch.tensor([encode_with_masks(Tokenizer.load(bert_run / "tokenizer"), "anna [MASK].")])
    with torch.no_grad():
        assert (ours(ids)[0] - hf(input_ids=ids).logits).abs().max() <= 1e-4


@pytest.mark.slow
def test_bert_learns_who_lives_where(shards, tmp_path):
    """Trained past the masked-LM plateau, BERT fills each person's city from the facts."""
    from lmforge.models import load_model
    from lmforge.models.bert import fill_mask
    from lmforge.tokenizers.base import Tokenizer

    run = tmp_path / "bert"
    _pretrain(shards, run, "bert", 1500, batch_size=16, seq_len=32, lr=5e-3, min_lr=5e-4)
    model = load_model(run / "checkpoints" / "step_1500")
    tok = Tokenizer.load(run / "tokenizer")
    for person, city in HOME.items():
        _, blanks = fill_mask(model, tok, f"{person} lives in [MASK].", top_k=1)
        assert tok.decode([blanks[0][0][0]]) == city, person
