"""C4 (few-shot beats zero-shot; example order biases the answer): verdict, helpers, --quick."""

from __future__ import annotations

import dataclasses
import math

import pytest
from claims_helpers import quick_context

from lmforge.experiments.claims import NOT_REPRODUCED, PARTLY, REPRODUCED
from lmforge.experiments.claims_prompting import (
    TaskFindings,
    by_k,
    order_numbers,
    run,
    verdict,
)
from lmforge.experiments.claims_prompting_common import mean_se, pct, points, wilson
from lmforge.prompting.sensitivity_results import Sweep, Trial

LABELS = ["neg", "pos"]


def found(task="sentiment", *, best=0.52, gap=0.0, gap_se=0.01, rng=0.01) -> TaskFindings:
    zero = 0.50
    return TaskFindings(
        task=task, n_test=200, chance=0.5, zero_shot=zero, zero_hi=wilson(zero, 200)[1],
        best_k=4, best_mean=best, order_range=rng, last_share=0.5 + gap / 2, last_chance=0.5,
        last_blind=0.5, last_gap=gap, last_gap_se=gap_se,
    )  # fmt: skip


def test_verdict_reproduced_when_both_halves_hold_on_every_task():
    tasks = [found(best=0.70, gap=0.20), found("topic", best=0.65, gap=0.10)]
    v = verdict(tasks, 1_310_000)
    assert v.status == REPRODUCED
    assert "best k=4 70.0 %" in v.reason and "gap +20.0" in v.reason


def test_verdict_partly_when_only_few_shot_holds():
    v = verdict([found(best=0.70), found("topic", best=0.51)], 1_310_000)
    assert v.status == PARTLY
    assert "few-shot beats zero-shot beyond noise on sentiment" in v.reason


def test_verdict_partly_when_orders_only_move_accuracy():
    v = verdict([found(rng=0.08), found("topic")], 1_310_000)
    assert v.status == PARTLY and "not toward the last label" in v.reason


def test_verdict_not_reproduced_says_why():
    # a gain inside the zero-shot interval and a gap within noise: neither half holds
    v = verdict([found(best=0.55, gap=0.02, gap_se=0.02), found("topic")], 1_310_000)
    assert v.status == NOT_REPRODUCED
    assert "too small (1.31 M parameters)" in v.reason and "55.0 %" in v.reason


def test_gap_needs_size_and_two_standard_errors():
    assert found(gap=0.05, gap_se=0.01).order_biased()
    assert not found(gap=0.05, gap_se=0.03).order_biased()  # within noise
    assert not found(gap=0.02, gap_se=0.001).order_biased()  # too small to matter
    assert not found(gap=0.05, gap_se=math.nan).order_biased()  # one draw: no noise estimate


def trial(seed, order, acc, share_pos, k=None) -> Trial:
    return Trial(
        k=len(order) if k is None else k, seed=seed, fmt="world", order=order, demos=[],
        accuracy={"uncalibrated": acc}, macro_f1={"uncalibrated": acc},
        predicted_share={"uncalibrated": {"pos": share_pos, "neg": 1 - share_pos}},
    )  # fmt: skip


def test_order_numbers_measure_the_last_labels_pull():
    # a model that answers the last shown label 80 % of the time
    trials = [
        trial(0, ["neg", "pos"], 0.60, 0.8), trial(0, ["pos", "neg"], 0.50, 0.2),
        trial(1, ["neg", "pos"], 0.55, 0.8), trial(1, ["pos", "neg"], 0.55, 0.2),
    ]  # fmt: skip
    sweep = Sweep("permutations", "sentiment", LABELS, {"neg": 0.5, "pos": 0.5}, 10, trials)
    o = order_numbers(sweep, sweep.base_rate)
    assert o["draws"] == 2 and o["orders"] == 2
    assert o["range"] == pytest.approx((0.10 + 0.0) / 2)
    assert o["last_share"] == pytest.approx(0.8) and o["last_chance"] == pytest.approx(0.5)
    assert o["last_blind"] == pytest.approx(0.5)  # position averaged out: each label half
    assert o["gaps"] == pytest.approx([0.6, 0.6]) and o["gap_se"] == pytest.approx(0.0)
    # the sweep itself is left as it was (the gap works on a relabelled copy)
    assert all(t.probe == "" for t in sweep.trials) and sweep.name == "permutations"


def test_a_model_answering_one_label_shows_no_pull():
    # always "neg": the last label's share is just how often neg happens to be last
    trials = [trial(0, o, 0.5, 0.0) for o in (["pos", "neg"], ["neg", "pos"], ["pos", "neg"])]
    sweep = Sweep("permutations", "sentiment", LABELS, {"neg": 0.5, "pos": 0.5}, 10, trials)
    o = order_numbers(sweep, sweep.base_rate)
    assert o["last_share"] == pytest.approx(2 / 3) and o["last_blind"] == pytest.approx(2 / 3)
    assert o["gap"] == pytest.approx(0.0) and o["range"] == 0.0


def test_by_k_groups_draws():
    trials = [trial(0, [], 0.5, 1.0, k=0), trial(0, ["pos"], 0.6, 1.0), trial(1, ["neg"], 0.4, 1)]
    sweep = Sweep("k", "sentiment", LABELS, {"neg": 0.5, "pos": 0.5}, 10, trials)
    acc = by_k(sweep)
    assert list(acc) == [0, 1]
    assert acc[1]["mean"] == pytest.approx(0.5) and acc[1]["n"] == 2


def test_common_helpers():
    lo, hi = wilson(0.5, 200)
    assert 0.43 < lo < 0.5 < hi < 0.57
    assert mean_se([1.0, 3.0]) == (2.0, 1.0)
    assert math.isnan(mean_se([1.0])[1])
    assert pct(0.5234) == "52.3" and pct(math.nan) == "–" and points(-0.012) == "-1.2"


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path, quick_base):
    ctx = quick_context(tmp_path, base=quick_base)
    res = run(ctx)
    assert res.verdict.status in (REPRODUCED, PARTLY, NOT_REPRODUCED)
    assert len(res.columns) == len(res.rows[0])
    assert {r[0] for r in res.rows} == {"sentiment", "topic"}
    assert any(r[1] == "k-shot" and r[2] == 0 for r in res.rows)
    for name in res.plots:
        assert (ctx.out / name).is_file(), name
    assert "fewshot_k.png" in res.plots and "order_bias.png" in res.plots
    tasks = res.numbers["tasks"]
    assert set(tasks) == {"sentiment", "topic"}
    # the verdict is the one its own numbers give
    again = verdict([TaskFindings(**t) for t in tasks.values()], res.numbers["params"])
    assert again == res.verdict
    assert dataclasses.asdict(TaskFindings(**tasks["sentiment"]))["n_test"] == 10
