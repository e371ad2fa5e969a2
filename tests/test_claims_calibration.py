"""C5 (contextual calibration raises accuracy and lowers its spread): verdict, helpers, --quick."""

from __future__ import annotations

import math

import pytest
from claims_helpers import quick_context

from lmforge.experiments.claims import NOT_REPRODUCED, PARTLY, REPRODUCED
from lmforge.experiments.claims_calibration import (
    Spread,
    TaskFindings,
    findings,
    prior_numbers,
    run,
    verdict,
)
from lmforge.prompting.sensitivity_results import Sweep, Trial

LABELS = ["neg", "pos"]


def found(task="sentiment", *, plain=(0.55, 0.06, 0.45, 0.65), cal=(0.70, 0.02, 0.66, 0.74),
          gain=0.15, se=0.01, chance=0.5) -> TaskFindings:  # fmt: skip
    return TaskFindings(task=task, prompts=20, chance=chance, plain=Spread(*plain),
                        calibrated=Spread(*cal), gain=gain, gain_se=se, better=0.9)  # fmt: skip


def test_verdict_reproduced_when_every_task_rises_and_tightens():
    v = verdict([found(), found("topic")], 1_310_000)
    assert v.status == REPRODUCED
    assert "55.0 ± 6.0 (45.0–65.0) % → 70.0 ± 2.0 (66.0–74.0) %" in v.reason


def test_a_rise_only_to_chance_is_partly():
    # the label prior removed, accuracy lifted from below chance to chance
    f = found("topic", plain=(0.21, 0.0, 0.21, 0.21), cal=(0.25, 0.01, 0.23, 0.27), gain=0.04,
              se=0.003, chance=0.27)  # fmt: skip
    assert f.rises() and not f.above_chance() and not f.tightens()
    v = verdict([found(), f], 1_310_000)
    assert v.status == PARTLY
    assert "sentiment:" not in v.reason.split(" — ")[1]  # only the lacking task is named
    assert "rises only to chance" in v.reason and "spread does not fall" in v.reason


def test_a_rise_within_noise_with_a_wider_spread_is_not_reproduced():
    f = found(plain=(0.51, 0.02, 0.48, 0.56), cal=(0.52, 0.03, 0.47, 0.58), gain=0.01, se=0.01)
    assert not f.rises() and not f.tightens()
    v = verdict([f, f], 1_310_000)
    assert v.status == NOT_REPRODUCED
    assert "the model is too small (1.31 M parameters)" in v.reason


def test_not_reproduced_above_chance_blames_the_prior_mismatch():
    f = found(plain=(0.70, 0.02, 0.66, 0.74), cal=(0.65, 0.04, 0.58, 0.72), gain=-0.05)
    v = verdict([f], 1_310_000)
    assert v.status == NOT_REPRODUCED and "not the bias of the real inputs" in v.reason
    assert f.falls() and "the mean falls (-5.0 points, beyond noise)" in v.reason


def test_spread_must_fall_in_std_and_not_widen_in_range():
    assert not found(cal=(0.70, 0.02, 0.40, 0.80)).tightens()  # narrower std, wider range
    assert not found(cal=(0.70, 0.07, 0.50, 0.60)).tightens()  # wider std
    assert not found(se=math.nan).rises()  # one prompt: no noise estimate


def trial(k, plain, cal, share_pos=0.9, p_cf_pos=0.7) -> Trial:
    return Trial(
        k=k, seed=0, fmt="world", order=[], demos=[],
        accuracy={"uncalibrated": plain, "calibrated": cal},
        macro_f1={"uncalibrated": plain, "calibrated": cal},
        predicted_share={"uncalibrated": {"pos": share_pos, "neg": 1 - share_pos},
                         "calibrated": {"pos": 0.5, "neg": 0.5}},
        mean_prob={"uncalibrated": {"pos": 0.8, "neg": 0.2}},
        p_cf=[1 - p_cf_pos, p_cf_pos],
    )  # fmt: skip


def test_findings_pair_each_prompt_with_itself():
    sweep = Sweep("formats", "sentiment", LABELS, {"neg": 0.5, "pos": 0.5}, 10,
                  [trial(0, 0.5, 0.6), trial(1, 0.6, 0.6), trial(1, 0.4, 0.7)])  # fmt: skip
    f = findings(sweep, 0.5)
    assert f.prompts == 3
    assert f.gain == pytest.approx((0.1 + 0.0 + 0.3) / 3)
    assert f.better == pytest.approx(2 / 3)
    assert f.plain.min == 0.4 and f.calibrated.max == 0.7
    only_k1 = findings(sweep, 0.5, [t for t in sweep.trials if t.k == 1])
    assert only_k1.prompts == 2 and only_k1.gain == pytest.approx(0.15)
    p = prior_numbers(sweep)
    assert p["label"] == "pos" and p["p_cf"] == pytest.approx(0.7)
    assert p["p_real"] == pytest.approx(0.8) and p["answered"] == pytest.approx(0.9)


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path, quick_base):
    ctx = quick_context(tmp_path, base=quick_base)
    res = run(ctx)
    assert res.verdict.status in (REPRODUCED, PARTLY, NOT_REPRODUCED)
    assert len(res.columns) == len(res.rows[0])
    assert [r[1] for r in res.rows if r[0] == "sentiment"] == [0, 1, "all"]
    for name in res.plots:
        assert (ctx.out / name).is_file(), name
    assert res.plots[0] == "calibration.png" and "sweeps/formats.png" in res.plots
    tasks = res.numbers["tasks"]
    rebuilt = []
    for t in tasks.values():
        t = {k: v for k, v in t.items() if k != "status"}
        rebuilt.append(TaskFindings(**{**t, "plain": Spread(**t["plain"]),
                                       "calibrated": Spread(**t["calibrated"])}))  # fmt: skip
    assert verdict(rebuilt, res.numbers["params"]) == res.verdict
    assert tasks["sentiment"]["prompts"] == 2 + 2 * 2  # 2 formats × (k=0 once + k=1 × 2 seeds)
