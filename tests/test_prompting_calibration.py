"""Contextual calibration and the affine variant against hand-computed numbers; metrics."""

from __future__ import annotations

import json
import math

import pytest
import torch

from lmforge.common import LmforgeError
from lmforge.prompting.calibration import (
    AffineCalibration,
    ContextualCalibration,
    content_free_probs,
)
from lmforge.prompting.metrics import NO_LABEL, classification_metrics, spread


def test_contextual_calibration_by_hand():
    # Three content-free prompts, 3 labels; rows need not be normalised.
    cf = torch.tensor([[0.6, 0.3, 0.1], [2.0, 1.0, 1.0], [0.5, 0.25, 0.25]], dtype=torch.float64)
    # normalised rows: (.6 .3 .1), (.5 .25 .25), (.5 .25 .25) -> mean (.5333.., .2666.., .2)
    p_cf = content_free_probs(cf)
    assert torch.allclose(p_cf, torch.tensor([1.6 / 3, 0.8 / 3, 0.2], dtype=torch.float64))
    cal = ContextualCalibration(p_cf)
    assert torch.allclose(cal.W, torch.diag(1 / p_cf)) and not bool(cal.b.any())
    p = torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64)
    # W p = (0.5 * 3/1.6, 0.3 * 3/0.8, 0.2 / 0.2) = (0.9375, 1.125, 1.0); sum 3.0625
    q = cal.apply(p)
    assert torch.allclose(q, torch.tensor([[0.9375, 1.125, 1.0]], dtype=torch.float64) / 3.0625)
    assert q.argmax().item() == 1  # the prompt's bias toward label 0 is divided out
    # The content-free input itself becomes uniform.
    assert torch.allclose(cal.apply(p_cf[None]), torch.full((1, 3), 1 / 3, dtype=torch.float64))


def test_a_biased_two_label_model_becomes_uniform_on_average():
    """p(A|x) = sigmoid(b + s(x)) with symmetric signals s; the content-free input has s = 0.

    Calibrated, log q_A/q_B = s(x): the bias b is gone, so the mean calibrated
    probability and the predicted-label split are exactly uniform.
    """
    bias = 2.0
    s = torch.tensor([-1.5, -0.5, -0.2, 0.2, 0.5, 1.5], dtype=torch.float64)
    pa = torch.sigmoid(bias + s)
    probs = torch.stack([pa, 1 - pa], -1)
    assert bool((probs.argmax(-1) == 0).all())  # uncalibrated: always label A
    cf = torch.tensor([[math.exp(bias), 1.0]], dtype=torch.float64)  # s = 0, unnormalised
    q = ContextualCalibration.from_content_free(cf).apply(probs)
    assert torch.allclose(q[:, 0], torch.sigmoid(s))
    assert math.isclose(float(q[:, 0].mean()), 0.5, abs_tol=1e-12)
    assert (q.argmax(-1) == 0).sum().item() == 3


def test_affine_calibration_fits_a_shifted_model():
    torch.manual_seed(0)
    n, C = 60, 3
    y = torch.arange(n) % C
    logits = torch.randn(n, C, dtype=torch.float64) + 3.0 * torch.nn.functional.one_hot(y, C)
    skew = torch.tensor([2.5, 0.0, -1.0], dtype=torch.float64)  # a prompt's bias in log space
    probs = torch.softmax(logits + skew, -1)
    before = (probs.argmax(-1) == y).double().mean().item()
    for diagonal in (False, True):
        aff = AffineCalibration.fit(probs, y, diagonal=diagonal)
        after = (aff.apply(probs).argmax(-1) == y).double().mean().item()
        assert after > before + 0.1
        if diagonal:
            assert torch.count_nonzero(aff.W - torch.diag(torch.diagonal(aff.W))) == 0
        # the fitted bias undoes most of the skew (up to a constant shift)
        b = aff.b - aff.b.mean()
        assert float(b[0] - b[2]) < -1.0
    aff = AffineCalibration.fit(probs, y, inputs="prob")
    assert aff.apply(probs).shape == (n, C)
    with pytest.raises(LmforgeError, match="n labels"):
        AffineCalibration.fit(probs, y[:5])


def test_contextual_calibration_is_the_log_space_affine_map():
    p_cf = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)
    probs = torch.softmax(torch.randn(5, 3, dtype=torch.float64), -1)
    aff = AffineCalibration(torch.eye(3, dtype=torch.float64), -p_cf.log())
    assert torch.allclose(ContextualCalibration(p_cf).apply(probs), aff.apply(probs))


def test_metrics_by_hand():
    gold = ["a", "a", "b", "b", "c"]
    pred = ["a", "b", "b", "b", None]
    m = classification_metrics(gold, pred, ["a", "b", "c"])
    assert m.accuracy == 3 / 5
    # a: P 1, R .5, F1 2/3; b: P 2/3, R 1, F1 .8; c: never predicted correctly: 0
    assert math.isclose(m.macro_f1, (2 / 3 + 0.8 + 0) / 3)
    assert m.predicted == {"a": 1, "b": 3, "c": 0, NO_LABEL: 1}
    assert m.confusion["a"] == {"a": 1, "b": 1, "c": 0, NO_LABEL: 0}
    assert m.confusion["c"][NO_LABEL] == 1
    assert m.predicted_share()["b"] == 0.6
    assert spread([0.5, 0.7, 0.6]) == pytest.approx(
        {"mean": 0.6, "std": math.sqrt(0.02 / 3), "min": 0.5, "max": 0.7, "n": 3}
    )


def test_calibration_divides_out_a_bias_added_to_the_model(tmp_path):
    """A model with +c on label A's token logit: uncalibrated it answers A; calibrated it
    answers exactly what the unbiased model answers calibrated (the odds of A scale by e^c
    for every input, content-free ones included)."""
    from test_data_helpers import make_bpe_tokenizer, write_jsonl
    from world_helpers import build_tiny_world

    from lmforge.models import build_model
    from lmforge.prompting.builder import PromptBuilder
    from lmforge.prompting.evaluate import FewShotConfig, evaluate_demos
    from lmforge.prompting.tasks import load_task

    world = build_tiny_world(tmp_path / "world")
    base_task = load_task("sentiment", world=world)
    docs = [ex.fields["text"] for ex in base_task.train + base_task.test]
    tok = make_bpe_tokenizer(tmp_path / "tok", 400, docs * 3)
    # Two words that are one token each after a space: single-token labels.
    words = [w for w in dict.fromkeys(" ".join(docs).split()) if len(tok.encode(" " + w)) == 1]
    rows = [{"text": ex.fields["text"], "label": ex.label} for ex in base_task.train]
    write_jsonl(tmp_path / "rows.jsonl", rows)
    spec = {
        "labels": ["negative", "positive"], "train": "rows.jsonl", "test": "rows.jsonl",
        "label_words": {"negative": words[0], "positive": words[1]},
        "format": {"template": "Review: {text}\nSentiment:"},
    }  # fmt: skip
    (tmp_path / "task.yaml").write_text(json.dumps(spec))
    task = load_task(str(tmp_path / "task.yaml"))
    b = PromptBuilder(task, tok)
    (t_a,) = b.label_ids()[0][0]

    torch.manual_seed(0)
    base = build_model(
        "llama", dict(vocab_size=400, block_size=512, n_layer=2, n_head=4, d_model=32)
    ).eval()

    class Biased(torch.nn.Module):
        def __init__(self, inner, c):
            super().__init__()
            self.inner, self.c = inner, c
            self.max_seq_len = inner.max_seq_len

        def new_kv_cache(self, *a, **kw):
            return self.inner.new_kv_cache(*a, **kw)

        def forward(self, ids, targets=None, kv_cache=None, *, last_only=False):
            logits, _ = self.inner(ids, kv_cache=kv_cache, last_only=last_only)
            logits = logits.clone()
            logits[..., t_a] += self.c
            return logits, None

    cfg = FewShotConfig(calibrate=True)
    demos = task.train[:2]
    plain = evaluate_demos(base, b, demos, task.test, cfg)
    biased = evaluate_demos(Biased(base, 12.0), b, demos, task.test, cfg)
    assert biased.metrics.predicted["negative"] == len(task.test)  # all A before calibration
    assert torch.allclose(biased.calibrated.probs, plain.calibrated.probs, atol=1e-9)
    assert biased.p_cf[0] > 0.99
