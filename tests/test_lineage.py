"""`lmforge eval lineage`: every model on one tiny corpus, same windows, sane numbers; clean errors."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from conftest import assert_clean_error, run_lmforge

from lmforge.experiments.lineage_config import MODELS
from lmforge.experiments.lineage_ngram import score_windows, train_token_ngram, window_targets

WORDS = "the king queen said to my lord and her his good night day come go what why".split()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    rng = random.Random(0)
    lines = []
    for i in range(600):
        lines.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 9))).capitalize())
        if i % 7 == 6:
            lines.append("")
    path = tmp_path_factory.mktemp("lineage") / "tiny.txt"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def lineage_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("lineage_run") / "out"
    r = run_lmforge(
        "eval", "lineage", "--corpus", corpus, "--out", out, "--budget-s", "1",
        "--context", "16", "--gen-tokens", "8", "--eval-every", "5", "--threads", "1",
        "--quiet",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out, r.stdout


def test_every_model_is_reported_with_sane_numbers(lineage_run):
    out, stdout = lineage_run
    result = json.loads((out / "lineage.json").read_text())
    assert [m["name"] for m in result["models"]] == list(MODELS)
    split = result["split"]
    assert split["val_predicted"] == split["val_tokens"] - 1
    for m in result["models"]:
        # Bits per char: finite, above 0, and below a uniform guess over the vocabulary
        # (plus slack for a model trained two seconds).
        assert 0 < m["val_bpc"] < math.log2(result["tokenizer"]["vocab_size"]) + 1, m["name"]
        assert m["params"] > 0 and m["gen_tok_per_s"] > 0 and m["train_s"] > 0
        assert len(m["val_bits_by_position"]) == 16
        assert all(math.isfinite(x) for x in m["val_bits_by_position"])
        assert m["sample"].strip(), m["name"]
        if m["params_unit"] == "parameters":
            assert m["curve"] and m["train_s"] >= 1.0
            times = [p["elapsed_s"] for p in m["curve"]]
            assert times == sorted(times)
    for name in ("config.yaml", "report.md", "plots/val_curve.png", "plots/loss_by_position.png"):
        assert (out / name).is_file(), name
    assert "best neural bpc / best n-gram bpc" in stdout.splitlines()[-2]
    assert "![loss by position]" in (out / "report.md").read_text()


def test_neural_models_have_similar_sizes(lineage_run):
    out, _ = lineage_run
    result = json.loads((out / "lineage.json").read_text())
    sizes = [m["params"] for m in result["models"] if m["params_unit"] == "parameters"]
    assert max(sizes) / min(sizes) < 1.3, sizes


def test_existing_run_needs_force(lineage_run, corpus):
    out, _ = lineage_run
    r = run_lmforge("eval", "lineage", "--corpus", corpus, "--out", out, "--budget-s", "1")
    assert_clean_error(r, "--force")


def test_bad_input_is_one_line(tmp_path, corpus):
    r = run_lmforge("eval", "lineage", "--corpus", tmp_path / "missing.txt", "--out", tmp_path)
    assert_clean_error(r, "missing.txt")
    r = run_lmforge("eval", "lineage", "--corpus", corpus, "--out", tmp_path, "--models", "bert")
    assert_clean_error(r, "models", "bert")
    r = run_lmforge(
        "eval", "lineage", "--corpus", corpus, "--out", tmp_path / "x", "--gen-tokens", "200"
    )
    assert_clean_error(r, "gen_tokens", "context")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "keep.txt").write_text("mine")
    r = run_lmforge("eval", "lineage", "--corpus", corpus, "--out", tmp_path / "other")
    assert_clean_error(r, "does not hold a lineage run")
    assert (tmp_path / "other" / "keep.txt").read_text() == "mine"


def test_window_targets_predict_every_token_but_the_first_once():
    targets, pos = window_targets(10, 4)
    assert targets.tolist() == list(range(1, 10))
    assert pos.tolist() == [0, 1, 2, 3, 0, 1, 2, 3, 0]


def test_ngram_uses_only_the_history_inside_the_window():
    """A 3-gram on a periodic stream predicts perfectly once it has 2 tokens of history;
    at position 0 it has one token and must still be certain (the period is 3)."""
    train = np.tile([3, 4, 5], 400)
    ng = train_token_ngram(train, vocab_size=8, order=3)
    val = np.tile([3, 4, 5], 10)
    losses = score_windows(ng, val, context=4)
    assert losses.shape == (len(val) - 1,)
    assert np.all(losses < 0.05)
    # An unseen token is charged <unk>'s (small) probability, a finite loss.
    odd = score_windows(ng, np.array([3, 4, 7, 5]), context=4)
    assert np.isfinite(odd).all() and odd[1] > 1.0
