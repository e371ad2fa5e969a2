"""C8 (chain of thought beats direct answers on multi-step problems): verdict, helpers, --quick."""

from __future__ import annotations

import pytest
from claims_helpers import quick_context

from lmforge.eval.tasks_stats import Accuracy
from lmforge.experiments.claims import NOT_REPRODUCED, PARTLY, REPRODUCED
from lmforge.experiments.claims_cot import (
    POOLED,
    cot_families,
    eval_records,
    pairs_by_family,
    run,
    verdict,
)


def size(pooled: tuple[int, int], family: tuple[int, int] = (10, 10), n: int = 150):
    """{family: (cot, direct)}: one family and the pooled numbers (n records each side)."""
    return {
        "multi_step": (Accuracy(family[0], 50), Accuracy(family[1], 50)),
        POOLED: (Accuracy(pooled[0], n), Accuracy(pooled[1], n)),
    }


def test_reproduced_at_the_larger_size_names_the_minimum_size():
    v = verdict([("tiny", size((10, 12))), ("base", size((60, 30)))])
    assert v.status == REPRODUCED
    assert "base: CoT 40.0% (60/150) vs direct 20.0% (30/150)" in v.reason
    assert "not beyond noise at tiny: it needs the larger model" in v.reason
    v = verdict([("tiny", size((50, 20))), ("base", size((60, 30)))])
    assert v.status == REPRODUCED and "holds at every size" in v.reason
    assert "only one model size" in verdict([("base", size((60, 30)))]).reason


def test_partly_when_only_one_family_or_only_the_smaller_size():
    v = verdict([("tiny", size((10, 12))), ("base", size((40, 35), family=(25, 5)))])
    assert v.status == PARTLY and "only on multi_step" in v.reason
    v = verdict([("tiny", size((50, 20))), ("base", size((40, 35)))])
    assert v.status == PARTLY and "only at tiny" in v.reason


def test_not_reproduced_says_why():
    v = verdict([("tiny", size((0, 1))), ("base", size((3, 2)))])
    assert v.status == NOT_REPRODUCED and "too small" in v.reason
    v = verdict([("tiny", size((10, 12))), ("base", size((30, 40)))])
    assert v.status == NOT_REPRODUCED and "direct answers are as good or better" in v.reason
    v = verdict([("tiny", size((10, 12))), ("base", size((40, 33)))])
    assert v.status == NOT_REPRODUCED and "within noise" in v.reason


def test_pairs_by_family_splits_modes_and_pools():
    rows = [
        ({"task": "multi_step", "cot": True}, "seen", True),
        ({"task": "multi_step", "cot": False}, "seen", False),
        ({"task": "fact_chain", "cot": True}, "seen", False),
        ({"task": "fact_chain", "cot": False}, "seen", True),
        ({"task": "fact_chain", "cot": False}, "seen", True),
    ]
    by = pairs_by_family(rows, ["fact_chain", "multi_step"])
    assert by["multi_step"] == (Accuracy(1, 1), Accuracy(0, 1))
    assert by["fact_chain"] == (Accuracy(0, 1), Accuracy(2, 2))
    assert by[POOLED] == (Accuracy(1, 2), Accuracy(2, 3))


def test_eval_records_take_both_variants_of_each_problem():
    fams = cot_families()
    assert fams == ["fact_chain", "multi_step", "word_problem"]
    test = [{"task": t, "problem_id": f"{t}{i}", "cot": c} for t in [*fams, "sorting"]
            for i in range(5) for c in (True, False)]  # fmt: skip
    recs = eval_records(test, fams, 2, seed=0)
    assert len(recs) == 2 * 2 * len(fams)
    ids = {r["problem_id"] for r in recs}
    assert {(r["problem_id"], r["cot"]) for r in recs} == {(i, c) for i in ids for c in (1, 0)}
    assert not any(r["task"] == "sorting" for r in recs)


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path, quick_base):
    ctx = quick_context(tmp_path, base=quick_base)
    res = run(ctx)
    assert res.verdict.status in (REPRODUCED, PARTLY, NOT_REPRODUCED)
    assert all(len(r) == len(res.columns) for r in res.rows)
    assert len(res.rows) == 2 * (len(cot_families()) + 1)  # two sizes × (families + pooled)
    assert res.plots == ["cot_vs_direct.png"] and (ctx.out / "cot_vs_direct.png").is_file()
    models = res.numbers["models"]
    assert set(models) == {"tiny", "base"} and all(m["sft_steps"] == 4 for m in models.values())
    assert res.numbers["tiny_pretrain"]["steps"] == 5
    acc = res.numbers["accuracy"]
    rebuilt = [
        (name, {f: (Accuracy(v["cot"]["correct"], v["cot"]["n"]),
                    Accuracy(v["direct"]["correct"], v["direct"]["n"])) for f, v in by.items()})
        for name, by in acc.items()
    ]  # fmt: skip
    assert verdict(rebuilt) == res.verdict
    assert rebuilt[0][1][POOLED][0].n == 2 * len(cot_families())  # 2 problems per family, CoT
