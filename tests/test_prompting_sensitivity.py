"""Sensitivity sweeps: permutations of the same examples, formats, k that does not fit, and the
recency / majority probes on a model with a known recency bias (calibration removes it)."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from conftest import assert_clean_error, run_lmforge_inprocess
from test_data_helpers import make_bpe_tokenizer
from world_helpers import build_tiny_world

from lmforge.prompting.builder import PromptBuilder
from lmforge.prompting.evaluate import FewShotConfig, draw_demos
from lmforge.prompting.metrics import spread
from lmforge.prompting.sensitivity import (
    Sweep,
    majority_orders,
    probe_majority,
    probe_recency,
    recency_orders,
    run_sweeps,
    sweep_formats,
    sweep_k,
    sweep_permutations,
)
from lmforge.prompting.tasks import ClassificationTask, load_task

cli = run_lmforge_inprocess


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny world, a BPE tokenizer of its texts and a random LLaMA (context 512)."""
    from lmforge.models import build_model

    root = tmp_path_factory.mktemp("sens")
    world = build_tiny_world(root / "world")
    docs = [
        ex.fields["text"]
        for name in ("sentiment", "topic")
        for ex in (lambda t: t.train + t.test)(load_task(name, world=world))
    ]
    tok = make_bpe_tokenizer(root / "tok", 400, docs * 3)
    torch.manual_seed(0)
    model = build_model(
        "llama", dict(vocab_size=400, block_size=512, n_layer=2, n_head=4, d_model=32,
                      init_std=0.3),
    ).eval()  # fmt: skip
    return {"world": world, "tok": tok, "model": model, "root": root}


def cfg_of(**kw) -> FewShotConfig:
    cfg = FewShotConfig(**kw)
    cfg.validate()
    return cfg


def test_a_permutation_sweep_shows_the_same_examples_in_different_orders(setup):
    task = load_task("topic", world=setup["world"])
    b = PromptBuilder(task, setup["tok"])
    cfg = cfg_of(k=[1, 3], seeds=2, permutations=4)
    s = sweep_permutations(setup["model"], b, task.test[:6], cfg)
    assert [sk.k for sk in s.skipped] == [1] and "one order" in s.skipped[0].reason
    assert len(s.trials) == 2 * 4 and s.variants() == ["uncalibrated", "calibrated"]
    for seed in (0, 1):
        trials = [t for t in s.trials if t.seed == seed]
        assert [t.perm for t in trials] == [0, 1, 2, 3]
        drawn, _ = draw_demos(task, 3, seed, cfg)
        assert trials[0].demos == [d.where for d in drawn]  # the first order is the draw
        assert len({tuple(t.demos) for t in trials}) == 4  # four different orders ...
        assert {tuple(sorted(t.demos)) for t in trials} == {tuple(sorted(trials[0].demos))}
    # ... and the two seeds draw different examples
    assert sorted(s.trials[0].demos) != sorted(s.trials[4].demos)
    rows = s.summary()
    assert [(r["k"], r["seed"], r["n"]) for r in rows] == [(3, 0, 4), (3, 1, 4), (3, "all", 8)]
    acc = [t.accuracy["calibrated"] for t in s.trials if t.seed == 1]
    assert rows[1]["accuracy"]["calibrated"] == spread(acc)
    within = (
        rows[0]["accuracy"]["uncalibrated"]["std"] + rows[1]["accuracy"]["uncalibrated"]["std"]
    ) / 2
    assert rows[2]["mean_std_within_draw"]["uncalibrated"] == pytest.approx(within)
    # A trial's accuracy is its predictions against the gold labels.
    t = s.trials[5]
    gold = [ex.label for ex in task.test[:6]]
    assert (
        t.accuracy["uncalibrated"] == sum(p == g for p, g in zip(t.preds["uncalibrated"], gold)) / 6
    )


def test_formats_share_the_examples_and_a_k_that_does_not_fit_is_skipped(setup):
    task = load_task("sentiment", world=setup["world"])
    b = PromptBuilder(task, setup["tok"])
    cfg = cfg_of(k=[2], seeds=2, fmt="all", sweep=["formats"])
    s = sweep_formats(setup["model"], b, task.test[:4], cfg, task.formats)
    fmts = [f.name for f in task.formats]
    assert list(dict.fromkeys(t.fmt for t in s.trials)) == fmts and len(s.trials) == 2 * len(fmts)
    for seed in (0, 1):
        assert len({tuple(t.demos) for t in s.trials if t.seed == seed}) == 1
    assert [r["fmt"] for r in s.summary()] == [*fmts, "all"]
    # k = 16 is over the train set (8); on a 160-token model k = 0 fits (108 tokens), k = 4 does not.
    s = sweep_k(setup["model"], b, task.test[:4], cfg_of(k=[0, 2, 16], seeds=2))
    assert [(r["k"], r["n"]) for r in s.summary()] == [(0, 1), (2, 2)]
    assert [sk.k for sk in s.skipped] == [16] and "train set" in s.skipped[0].reason
    from lmforge.models import build_model

    torch.manual_seed(0)
    short = build_model("llama", dict(vocab_size=400, block_size=160, n_layer=1, n_head=2,
                                      d_model=16)).eval()  # fmt: skip
    s = sweep_k(short, b, task.test[:4], cfg_of(k=[0, 4], seeds=2))
    assert [r["k"] for r in s.summary()] == [0]
    (sk,) = s.skipped
    assert sk.k == 4 and "context of 160 tokens" in sk.reason and "test.jsonl:" in sk.reason


def test_probe_orders():
    assert recency_orders(["n", "p"]) == [["p", "p", "n", "n"], ["n", "n", "p", "p"]]
    four = recency_orders(["a", "b", "c", "d"])
    assert [o[-1] for o in four] == ["a", "b", "c", "d"] and all(
        sorted(o) == list("abcd") for o in four
    )
    assert recency_orders(["n", "p"], 1) == [["p", "n"], ["n", "p"]]
    got = majority_orders(["n", "p"], 3)
    assert [o for m, _, o in got if m == "n"] == [
        ["p", "n", "n", "n"], ["n", "p", "n", "n"], ["n", "n", "p", "n"], ["n", "n", "n", "p"],
    ]  # fmt: skip
    assert majority_orders(["a", "b", "c"], 3)[0] == ("a", 0, ["b", "c", "a", "a", "a"])


class _History:
    """A KV cache plus, per row, the label last seen in the tokens fed so far (-1: none)."""

    def __init__(self, inner, last: torch.Tensor):
        self.inner, self.last = inner, last

    def keep_rows(self, index):
        # copy first: the scorer copies a cache shallowly and then selects rows of the copy
        self.inner = copy.copy(self.inner).keep_rows(index)
        self.last = self.last[index.to(self.last.device)]
        return self


class RecencyBiased(torch.nn.Module):
    """`inner` plus `c` on the logit of the label token last seen in the input (recency bias)."""

    def __init__(self, inner, label_tokens: list[int], c: float):
        super().__init__()
        self.inner, self.c = inner, c
        self.tokens = torch.tensor(label_tokens)
        self.max_seq_len = inner.max_seq_len

    def new_kv_cache(self, batch, max_len, pad_lens=None):
        inner = self.inner.new_kv_cache(batch, max_len, pad_lens)
        return _History(inner, torch.full((batch,), -1, dtype=torch.long))

    def forward(self, ids, targets=None, kv_cache=None, *, last_only=False):
        logits, _ = self.inner(ids, kv_cache=kv_cache.inner, last_only=last_only)
        logits = logits.clone()  # (B, T or 1, V)
        state = kv_cache.last.clone()  # (B,)
        for t in range(ids.size(1)):
            hit = ids[:, t, None] == self.tokens[None]  # (B, C)
            state = torch.where(hit.any(-1), hit.float().argmax(-1), state)
            if logits.size(1) == ids.size(1):  # the logits at t see tokens up to t
                self._bias(logits[:, t], state)
        if logits.size(1) != ids.size(1):
            self._bias(logits[:, -1], state)
        kv_cache.last = state
        return logits, None

    def _bias(self, row, state):  # row (B, V)
        on = state >= 0
        row[on, self.tokens[state[on]]] += self.c


def _unseen_label_task(setup) -> ClassificationTask:
    """Sentiment with two one-token label words that occur in no text (topic words), so the
    last label token a prompt shows is always the last example's label."""
    from lmforge.prompting.tasks import PromptFormat

    tok = setup["tok"]
    task = load_task("sentiment", world=setup["world"])
    seen = {i for ex in task.train + task.test for i in tok.encode(ex.fields["text"])}
    seen |= set(tok.encode("Review: \nSentiment: N/A [MASK]"))
    topic = load_task("topic", world=setup["world"])
    words = [
        w for w in dict.fromkeys(" ".join(ex.fields["text"] for ex in topic.train).split())
        if w.isalpha() and len(tok.encode(" " + w)) == 1 and tok.encode(" " + w)[0] not in seen
    ]  # fmt: skip
    fmt = PromptFormat("unseen", "Review: {text}\nSentiment:",
                       label_words={"negative": [words[0]], "positive": [words[1]]})  # fmt: skip
    return task.with_format(fmt)


def test_probes_measure_a_known_recency_bias_and_calibration_removes_it(setup):
    task = _unseen_label_task(setup)
    b = PromptBuilder(task, setup["tok"])
    label_tokens = [ids[0][0] for ids in b.label_ids()]
    biased = RecencyBiased(setup["model"], label_tokens, 30.0)
    test = task.test[:8]
    # One content-free input: p_cf's odds then scale by exactly e^c too (a mean of several
    # inputs' probabilities would not), so calibration removes the bias exactly.
    cfg = cfg_of(seeds=2, content_free=["N/A"])
    plain = probe_recency(setup["model"], b, test, cfg)
    s = probe_recency(biased, b, test, cfg)
    assert [t.order for t in s.trials[:2]] == [["positive"] * 2 + ["negative"] * 2,
                                               ["negative"] * 2 + ["positive"] * 2]  # fmt: skip
    for seed in (0, 1):  # every order of a seed shows the same four examples
        assert len({tuple(sorted(t.demos)) for t in s.trials if t.seed == seed}) == 1
    # Uncalibrated, the biased model always answers the last example's label.
    for t in s.trials:
        assert t.preds["uncalibrated"] == [t.last_label] * len(test)
        assert t.share(t.last_label) == 1.0
    assert s.base_rate == {"negative": 0.5, "positive": 0.5}
    h = s.headline()
    assert h["uncalibrated"]["share"] == 1.0 and h["uncalibrated"]["gap"] == 1.0
    assert h["uncalibrated"]["base_rate"] == 0.5
    # Calibrated, the bias (the same for the content-free inputs) is divided out exactly:
    # the biased model's calibrated answers are the unbiased model's.
    for t, u in zip(s.trials, plain.trials):
        assert t.preds["calibrated"] == u.preds["calibrated"]
        mine = sum(p == t.last_label for p in t.preds["calibrated"]) / len(test)
        assert t.share(t.last_label, "calibrated") == mine
    assert h["calibrated"]["share"] == plain.headline()["calibrated"]["share"]
    # in probability terms too: p(last label) is ~1 uncalibrated, the plain model's calibrated
    assert h["uncalibrated"]["prob_gap"] == pytest.approx(1.0, abs=1e-6)
    cal_gap = plain.headline()["calibrated"]["prob_gap"]
    assert h["calibrated"]["prob_gap"] == pytest.approx(cal_gap, abs=1e-5)  # float32 logits
    assert abs(h["calibrated"]["gap"]) < h["uncalibrated"]["gap"]
    row = s.summary()[0]
    assert row["label"] == "negative" and row["share"]["uncalibrated"]["mean"] == 1.0

    m = probe_majority(biased, b, test, cfg)
    rows = m.summary()
    assert [r["probe"] for r in rows[:4]] == [f"majority=negative@{p}" for p in range(4)]
    # the minority example last (position 3) takes every answer; elsewhere the majority does
    assert [r["share"]["uncalibrated"]["mean"] for r in rows] == [1.0, 1.0, 1.0, 0.0] * 2
    assert m.headline()["uncalibrated"]["share"] == 0.75
    assert all(r["base_rate"] == 0.5 for r in rows)
    assert m.headline()["uncalibrated"]["gap"] == pytest.approx(0.5)  # 0.75 - 0.25


def test_a_probe_the_train_set_cannot_give_is_skipped(setup):
    task = load_task("sentiment", world=setup["world"])
    b = PromptBuilder(task, setup["tok"])
    s = probe_majority(setup["model"], b, task.test[:2], cfg_of(seeds=1, probe_majority=5))
    assert not s.trials and "5 train examples of label" in s.skipped[0].reason


def test_run_sweeps_writes_tables_and_plots(setup, tmp_path):
    from lmforge.prompting.sensitivity_report import sweeps_markdown, write_sweeps

    task = load_task("sentiment", world=setup["world"])
    b = PromptBuilder(task, setup["tok"])
    cfg = cfg_of(k=[0, 2], seeds=1, permutations=2, fmt="0,input_output", probe_majority=2,
                 sweep=["k", "permutations", "formats", "recency", "majority"])  # fmt: skip
    sweeps = run_sweeps(setup["model"], b, cfg, test=task.test[:4], show_progress=False)
    assert [s.name for s in sweeps] == ["k", "permutations", "formats", "recency", "majority"]
    assert len(sweeps[3].trials) == 2 and len(sweeps[4].trials) == 2 * 3
    md = sweeps_markdown(sweeps, config=cfg)
    assert "## Recency probe" in md and "last label" in md and "skipped" in md  # k=0 perms
    names = write_sweeps(tmp_path / "out", sweeps, config=cfg)
    assert sorted(names) == sorted(["results.json", "results.md", "k.png", "permutations.png",
                                    "formats.png", "recency.png", "majority.png"])  # fmt: skip
    doc = json.loads((tmp_path / "out" / "results.json").read_text())
    assert doc["kind"] == "lmforge fewshot" and doc["mode"] == "sweep"
    assert [s["sweep"] for s in doc["sweeps"]] == cfg.sweep
    assert doc["sweeps"][3]["headline"]["calibrated"]["base_rate"] == 0.5
    # results.json holds enough to redraw the tables
    again = [Sweep.from_dict(d) for d in doc["sweeps"]]
    assert sweeps_markdown(again, config=cfg) == md


def test_the_verb_runs_sweeps_on_several_tasks(tmp_path):
    from test_fewshot_cli import make_prompting_run

    made = make_prompting_run(tmp_path / "m")
    out = tmp_path / "out"
    args = ["fewshot", "--run", made["run"], "--world", made["world"], "--task", "sentiment,topic",
            "--sweep", "k,recency", "--k", "0,9", "--seeds", "1", "--limit", "4", "--out", out,
            "--quiet"]  # fmt: skip
    r = cli(*args)
    assert r.returncode == 0, r.stderr
    assert "recency on topic:" in r.stdout and "skipped: k=9: larger than the train set" in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ["k.png", "recency.png", "results.json",
                                                     "results.md"]  # fmt: skip
    doc = json.loads((out / "results.json").read_text())
    assert [(s["sweep"], s["task"]) for s in doc["sweeps"]] == [
        ("k", "sentiment"), ("k", "topic"), ("recency", "sentiment"), ("recency", "topic"),
    ]  # fmt: skip
    assert_clean_error(cli(*args[:-1]), "--force")  # its own output: only with --force
    r = cli(*args, "--force")
    assert r.returncode == 0, r.stderr
    # Bad input: one line, nothing written.
    bad = tmp_path / "bad"
    base = ["fewshot", "--run", made["run"], "--world", made["world"], "--out", bad]
    cases = [
        (["--task", "sentiment", "--sweep", "orders"], ["sweep", "'orders'", "permutations"]),
        (["--task", "sentiment", "--sweep", "formats"], ["--fmt all"]),
        (["--task", "sentiment", "--fmt", "all"], ["--sweep formats"]),
        (["--task", "sentiment,topic"], ["several tasks", "--sweep"]),
        (["--task", "sentiment", "--sweep", "formats", "--fmt", "0,fancy"], ["no format named 'fancy'"]),
        (["--task", "sentiment", "--sweep", "k", "--order", "positive,negative"], ["order", "--sweep"]),
    ]  # fmt: skip
    for extra, needles in cases:
        assert_clean_error(cli(*base, *extra), *needles)
        assert not bad.exists()
