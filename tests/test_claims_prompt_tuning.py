"""Experiment C6 (prompt tuning vs full fine-tuning by size): the verdict rule, the table,
and one --quick run end to end on the tiny base."""

from __future__ import annotations

import math

import pytest
from claims_helpers import quick_context

from lmforge.experiments.claims import NOT_REPRODUCED, PARTLY, REPRODUCED
from lmforge.experiments.claims_prompt_tuning import (
    COLUMNS,
    SizeResult,
    run,
    table_rows,
    verdict,
)


def size(params: int, zero: float, soft: float, full: float, soft_params: int = 1280):
    return SizeResult(f"m{params}", params, soft_params, params, zero, soft, full)


SMALL, LARGE = 200_000, 1_300_000


def test_close_at_the_largest_and_shrinking_is_reproduced():
    v = verdict([size(SMALL, 0.25, 0.60, 0.90), size(LARGE, 0.25, 0.88, 0.91)])
    assert v.status == REPRODUCED
    assert "88.0%" in v.reason and "91.0%" in v.reason and "30.0 points" in v.reason


def test_close_everywhere_without_shrinking_is_partly():
    v = verdict([size(SMALL, 0.25, 0.89, 0.91), size(LARGE, 0.25, 0.88, 0.91)])
    assert v.status == PARTLY
    assert "not 3 points smaller" in v.reason


def test_shrinking_gap_still_wide_is_partly():
    v = verdict([size(SMALL, 0.25, 0.30, 0.90), size(LARGE, 0.25, 0.60, 0.95)])
    assert v.status == PARTLY
    assert "35.0 points short" in v.reason


def test_wide_gap_that_does_not_shrink_is_not_reproduced():
    v = verdict([size(SMALL, 0.25, 0.25, 0.80), size(LARGE, 0.25, 0.26, 0.99)])
    assert v.status == NOT_REPRODUCED
    assert "too small" in v.reason and "73.0" in v.reason


def test_full_fine_tuning_that_learns_nothing_is_not_reproduced():
    # Both at chance: a zero gap must not count as "approaches".
    v = verdict([size(SMALL, 0.25, 0.25, 0.26), size(LARGE, 0.25, 0.25, 0.30)])
    assert v.status == NOT_REPRODUCED
    assert "not learned" in v.reason


def test_many_trained_parameters_do_not_count_as_approaching():
    # Within a point of full FT, but training 2% of the model: not the claim's "fraction".
    many = LARGE // 50
    v = verdict([size(SMALL, 0.25, 0.60, 0.90, many), size(LARGE, 0.25, 0.90, 0.91, many)])
    assert v.status == PARTLY and "more than 5" in v.reason


def test_order_of_sizes_does_not_matter_and_one_size_is_refused():
    a, b = size(SMALL, 0.25, 0.60, 0.90), size(LARGE, 0.25, 0.88, 0.91)
    assert verdict([b, a]) == verdict([a, b])
    with pytest.raises(ValueError):
        verdict([a])


def test_table_rows_fraction_gap_and_share():
    r = size(LARGE, 0.25, 0.75, 0.95, soft_params=2600)
    assert r.fraction == pytest.approx(0.002) and r.gap == pytest.approx(20.0)
    assert r.recovered == pytest.approx(0.5 / 0.7)
    (row,) = table_rows([r])
    assert len(row) == len(COLUMNS)
    assert row[4] == "0.20%" and row[8] == "20.0" and row[9] == "71%"
    flat = size(LARGE, 0.5, 0.5, 0.4)
    assert math.isnan(flat.recovered) and table_rows([flat])[0][9] == "n/a"


@pytest.mark.slow
def test_quick_run_end_to_end(tmp_path, quick_base):
    ctx = quick_context(tmp_path, base=quick_base)
    res = run(ctx)
    assert res.columns == COLUMNS and len(res.rows) == 2
    sizes = res.numbers["sizes"]
    assert sizes[0]["params"] < sizes[1]["params"]
    for s in sizes:
        assert s["soft_params"] == 20 * (s["soft_params"] // 20) > 0  # 20 tokens x d_model
        assert s["full_params"] == s["params"]
        for k in ("zero_shot", "prompt_tuned", "fine_tuned"):
            assert 0.0 <= s[k] <= 1.0
    assert res.verdict.status in (REPRODUCED, PARTLY, NOT_REPRODUCED)
    assert res.plots == ["accuracy_by_size.png"]
    assert (ctx.out / res.plots[0]).stat().st_size > 0
    assert (ctx.out / "tune" / "base_soft" / "result.json").is_file()
