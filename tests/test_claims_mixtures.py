"""C7 (multi-template mixtures generalise better than one template): verdict, helpers, --quick."""

from __future__ import annotations

import pytest
import yaml
from claims_helpers import quick_context

from lmforge.eval.tasks_stats import Accuracy
from lmforge.experiments.claims import NOT_REPRODUCED, PARTLY, REPRODUCED
from lmforge.experiments.claims_mixtures import (
    GROUPS,
    beats,
    eval_sets,
    mixture_yaml,
    run,
    verdict,
    widest_gap,
)
from lmforge.experiments.claims_sft_common import diff_interval, paired, pick_records


def accs(templates: tuple[int, int], task: tuple[int, int], n: int = 200) -> dict[str, Accuracy]:
    return {
        "seen_t1": Accuracy(60, n),
        "other_train": Accuracy(50, n),
        "heldout_templates": Accuracy(templates[0], templates[1]),
        "heldout_task": Accuracy(task[0], task[1]),
    }


def test_reproduced_when_multi_wins_both_beyond_noise():
    v = verdict(accs((40, 200), (60, 150)), accs((80, 200), (95, 150)))
    assert v.status == REPRODUCED
    assert "held-out templates multi 40.0% (80/200) vs single 20.0% (40/200)" in v.reason


def test_partly_when_only_templates_win():
    v = verdict(accs((40, 200), (1, 150)), accs((80, 200), (2, 150)))
    assert v.status == PARTLY
    assert "held-out templates (h*) only" in v.reason
    assert "too small" in v.reason  # the held-out task: both near zero


def test_not_reproduced_within_noise_or_worse():
    v = verdict(accs((40, 200), (60, 150)), accs((46, 200), (50, 150)))
    assert v.status == NOT_REPRODUCED
    assert "within noise" in v.reason and "multi is not better" in v.reason


def test_beats_needs_the_interval_above_zero():
    assert beats(Accuracy(80, 200), Accuracy(40, 200))
    assert not beats(Accuracy(45, 200), Accuracy(40, 200))
    d, lo, hi = diff_interval(Accuracy(45, 200), Accuracy(40, 200))
    assert d == pytest.approx(0.025) and lo < 0 < hi
    # Newcombe's interval of 0/10 - 0/10 is symmetric about 0 and inside [-1, 1]
    d, lo, hi = diff_interval(Accuracy(0, 10), Accuracy(0, 10))
    assert d == 0 and lo == pytest.approx(-hi) and -1 < lo < 0


def test_widest_gap_names_the_family_that_decides():
    single = {"topic": Accuracy(19, 20), "sentiment": Accuracy(10, 20), "sorting": Accuracy(0, 20)}
    multi = {"topic": Accuracy(5, 20), "sentiment": Accuracy(11, 20), "sorting": Accuracy(0, 20)}
    note = widest_gap(single, multi)
    assert "widest gap is topic: multi 25.0% (5/20) vs single 95.0% (19/20)" in note
    assert "2 of 3 families differ by under 10 points" in note


def test_pick_records_is_seeded_and_per_family():
    recs = [{"task": t, "problem_id": f"{t}{i}", "cot": False} for t in "ab" for i in range(10)]
    recs += [{"task": "c", "problem_id": "c0", "cot": False}]
    one = pick_records(recs, 3, seed=0)
    assert [r["task"] for r in one].count("a") == 3 and [r["task"] for r in one].count("c") == 1
    assert one == pick_records(recs, 3, seed=0) and one != pick_records(recs, 3, seed=1)
    assert one == sorted(one, key=recs.index)  # file order kept
    other = [{"problem_id": r["problem_id"], "cot": False, "template": "h1"} for r in recs]
    assert [r["problem_id"] for r in paired(one, other)] == [r["problem_id"] for r in one]


def test_mixture_yaml_filters_templates(tmp_path):
    path = mixture_yaml(tmp_path / "m.yaml", tmp_path / "train.jsonl", seed=3,
                        templates=["*/t1"], cap=None)  # fmt: skip
    spec = yaml.safe_load(path.read_text())
    assert spec == {"seed": 3, "sources": [{"name": "world", "path": str(tmp_path / "train.jsonl"),
                                            "templates": ["*/t1"]}]}  # fmt: skip


@pytest.mark.slow
def test_eval_sets_pair_t1_problems_with_heldout_templates(quick_base):
    sets = eval_sets(quick_base.world, 2, 4, seed=0)
    assert set(sets) == set(GROUPS)
    assert all(r["template"].endswith("/t1") and not r["cot"] for r in sets["seen_t1"])
    assert not any(r["template"].endswith("/t1") for r in sets["other_train"])
    assert {r["problem_id"] for r in sets["heldout_templates"]} == {
        r["problem_id"] for r in sets["seen_t1"]
    }
    assert len(sets["heldout_task"]) == 4 and all(r["heldout_task"] for r in sets["heldout_task"])


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path, quick_base):
    ctx = quick_context(tmp_path, base=quick_base)
    res = run(ctx)
    assert res.verdict.status in (REPRODUCED, PARTLY, NOT_REPRODUCED)
    assert [r[0] for r in res.rows] == list(GROUPS.values())
    assert all(len(r) == len(res.columns) for r in res.rows)
    assert res.plots == ["mixtures.png"] and (ctx.out / "mixtures.png").is_file()
    acc = res.numbers["accuracy"]
    assert set(acc) == {"single", "multi"}
    # the mixtures: single keeps t1 templates only; multi has as many rows
    rows = res.numbers["mixture_rows"]
    assert rows["single"] == rows["multi"] > 0
    assert res.numbers["steps"] == {"single": 4, "multi": 4}
    rebuilt = {r: {g: Accuracy(a["correct"], a["n"]) for g, a in acc[r].items()} for r in acc}
    assert verdict(rebuilt["single"], rebuilt["multi"]) == res.verdict
    held_task = (quick_base.world / "instructions" / "heldout_tasks.jsonl").read_text().splitlines()
    assert rebuilt["single"]["heldout_task"].n == min(6, len(held_task))  # QUICK task_records
