"""`lmforge experiments`: the registry, the runner, the base, and the verdicts of C9 and C10."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import pytest
from claims_helpers import quick_context
from conftest import assert_clean_error, run_lmforge_inprocess

from lmforge.common import LmforgeError
from lmforge.experiments import claims_best_of_n as c9
from lmforge.experiments import claims_ppo as c10
from lmforge.experiments.claims import (
    BASE_MINUTES,
    CLAIMS,
    NOT_REPRODUCED,
    PARTLY,
    REPRODUCED,
    ClaimResult,
    ClaimSpec,
    Verdict,
    find_claim,
    select_claims,
)
from lmforge.experiments.claims_base import read_base
from lmforge.experiments.claims_run import MARKER, read_results, run_claims


def test_the_registry_has_the_ten_claims_each_with_a_runner_and_a_verdict():
    assert [s.id for s in CLAIMS] == [f"C{i}" for i in range(1, 11)]
    assert len({s.slug for s in CLAIMS}) == 10
    for spec in CLAIMS:
        mod = importlib.import_module(f"lmforge.experiments.{spec.module}")
        assert callable(mod.run) and callable(mod.verdict), spec.module
        assert 0 < spec.minutes <= 10
    assert BASE_MINUTES + sum(s.minutes for s in CLAIMS) <= 60  # `run all` within the hour


def test_claims_are_found_by_id_slug_or_folder_and_unknown_names_list_the_ids():
    assert find_claim("c3").id == "C3"
    assert find_claim("best-of-n").id == "C9"
    assert find_claim("C10-ppo-kl").id == "C10"
    assert [s.id for s in select_claims(["C10", "c1"])] == ["C1", "C10"]  # registry order
    assert len(select_claims(["all"])) == 10
    with pytest.raises(LmforgeError, match="C1, C2.*or all"):
        find_claim("C11")


def test_a_verdict_takes_only_the_three_statuses():
    assert Verdict(PARTLY, "x").line() == "partly reproduced: x"
    with pytest.raises(ValueError):
        Verdict("confirmed", "x")


def _fake(monkeypatch, status: str, fail: bool = False):
    """C1's slot runs a function writing one plot, so the runner is tested without training."""

    def run(ctx):
        if fail:
            raise RuntimeError("boom")
        from lmforge.experiments.claims_plot import line_plot

        name = line_plot(ctx.out / "p.png", {"a": ([1, 2], [3, 4])}, title="t", xlabel="x",
                         ylabel="y")  # fmt: skip
        return ClaimResult(Verdict(status, f"measured {ctx.seed}"), ["n", "v"], [[1, 0.5]],
                           [name], {"v": 0.5}, ["a note"])  # fmt: skip

    real = ClaimSpec.runner
    monkeypatch.setattr(
        ClaimSpec, "runner", lambda self: run if self.id == "C1" else real(self), raising=True
    )


def test_the_runner_writes_each_result_and_the_summary(tmp_path, monkeypatch):
    _fake(monkeypatch, REPRODUCED)
    out = tmp_path / "exp"
    assert run_claims(["C1"], out, seed=7) == 0
    doc = json.loads((out / "C1-ngram-context" / "result.json").read_text())
    assert (doc["status"], doc["reason"], doc["rows"]) == (REPRODUCED, "measured 7", [[1, 0.5]])
    assert (out / "C1-ngram-context" / "p.png").stat().st_size > 1000
    readme = (out / "C1-ngram-context" / "README.md").read_text()
    assert "**Verdict: reproduced** — measured 7" in readme and "| 1 | 0.5 |" in readme
    summary = (out / "claims.md").read_text()
    assert "| C1 |" in summary and "**reproduced**" in summary
    assert "Not run yet: C2, C3, C4, C5, C6, C7, C8, C9, C10." in summary
    assert "base64" in (out / "claims.html").read_text()  # the plot inlined
    assert (out / MARKER).is_file()


def test_a_failed_rerun_keeps_the_last_result_and_the_others_still_run(tmp_path, monkeypatch):
    out = tmp_path / "exp"
    _fake(monkeypatch, PARTLY)
    assert run_claims(["C1"], out) == 0
    monkeypatch.undo()
    _fake(monkeypatch, PARTLY, fail=True)
    assert run_claims(["C1"], out) == 1
    assert [doc["status"] for _, doc in read_results(out)] == [PARTLY]
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]


def test_an_out_folder_of_someone_elses_files_is_refused(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep")
    r = run_lmforge_inprocess("experiments", "run", "C1", "--out", out)
    assert_clean_error(r, "not made by `lmforge experiments`")
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_unknown_experiment_and_bad_threads_are_one_line(tmp_path):
    assert_clean_error(
        run_lmforge_inprocess("experiments", "run", "C0", "--out", tmp_path / "e"), "no experiment"
    )
    r = run_lmforge_inprocess("experiments", "run", "C1", "--out", tmp_path / "e", "--threads", "0")
    assert_clean_error(r, "--threads")
    assert not (tmp_path / "e").exists()


def test_list_names_every_claim():
    r = run_lmforge_inprocess("experiments", "list")
    assert r.returncode == 0
    for spec in CLAIMS:
        assert spec.id in r.stdout and spec.slug in r.stdout


def test_a_base_that_is_not_a_finished_recipe_is_refused(tmp_path):
    with pytest.raises(LmforgeError, match="not a recipe folder"):
        read_base(tmp_path, "sft")
    (tmp_path / "world").mkdir()
    (tmp_path / "world" / "manifest.json").write_text("{}")
    steps = {"world": {"folder": str(tmp_path / "world")}, "pretrain": {"folder": "nowhere"}}
    (tmp_path / "recipe_state.json").write_text(json.dumps({"steps": steps}))
    with pytest.raises(LmforgeError, match="stage tokenizer is not complete"):
        read_base(tmp_path, "pretrain")


# --- C9: best-of-N -----------------------------------------------------------------------


def _shape(max1, maxn, med1, medn):
    rows = [{"n": 1, "max": max1, "median": med1}, {"n": 32, "max": maxn, "median": medn}]
    return c9.curve_shape(rows)


def test_best_of_n_verdicts():
    flat = _shape(0.30, 0.60, 0.30, 0.32)
    assert c9.verdict({"checker": flat, "graded": flat}).status == REPRODUCED
    drifting = _shape(0.30, 0.60, 0.30, 0.10)  # the median falls by 2/3 of the max's rise
    v = c9.verdict({"checker": drifting, "graded": flat})
    assert v.status == PARTLY and "majority" in v.reason
    still = _shape(0.30, 0.32, 0.30, 0.30)
    v = c9.verdict({"checker": still, "graded": still})
    assert v.status == NOT_REPRODUCED and "little to choose from" in v.reason


# --- C10: PPO ----------------------------------------------------------------------------


def _rows(scores, kls):
    return [
        {"iteration": i + 1, "mean_score": s, "kl": k} for i, (s, k) in enumerate(zip(scores, kls))
    ]


def test_ppo_summary_and_verdicts():
    rising = c10.summarize(_rows([0.1] * 5 + [0.4] * 5, [0.1] * 10), episodes=64)
    assert rising["score_rise"] == pytest.approx(0.3)
    assert rising["score_se"] == pytest.approx(((0.09 + 0.24) / 320) ** 0.5)
    assert rising["kl_growth"] == pytest.approx(1.0)
    creeping = [0.5 * i for i in range(10)]  # the KL keeps growing: 1.0 -> 3.5 nats
    drifted = c10.summarize(_rows([0.1] * 5 + [0.4] * 5, creeping), episodes=64)
    assert (drifted["kl_mid"], drifted["kl_end"]) == pytest.approx((1.0, 3.5))
    control = c10.summarize(_rows([0.2] * 10, [10.0 * i for i in range(10)]), episodes=64)
    flat = c10.summarize(_rows([0.2] * 10, [3.0] * 10), episodes=64)
    assert c10.verdict(rising, control).status == REPRODUCED
    assert c10.verdict(flat, control).status == PARTLY  # settled at 3 nats, below the control's
    v = c10.verdict(drifted, control)
    assert v.status == PARTLY and "still growing" in v.reason
    v = c10.verdict(rising, rising)
    assert v.status == PARTLY and "no lower than without the penalty" in v.reason
    v = c10.verdict(flat, control)
    assert "does not rise" in v.reason
    assert c10.verdict(c10.summarize(_rows([0.2] * 10, creeping), 64), control).status == (
        NOT_REPRODUCED
    )


@pytest.mark.slow
def test_best_of_n_and_ppo_run_on_the_quick_base(tmp_path, quick_base):
    res = c9.run(quick_context(tmp_path / "c9", base=quick_base))
    assert [r[0] for r in res.rows] == [1, 2, 4]
    assert res.numbers["N"] == 4 and (tmp_path / "c9" / "exp" / res.plots[0]).is_file()
    res = c10.run(quick_context(tmp_path / "c10", base=quick_base))
    assert len(res.rows) == 2 and res.numbers["summaries"]["beta"]["iterations"] == 4
    assert all((tmp_path / "c10" / "exp" / p).is_file() for p in res.plots)


def test_the_packaged_base_recipes_load(tmp_path):
    from lmforge.experiments.claims_base import base_recipe
    from lmforge.experiments.recipe_config import load_recipe

    for quick in (True, False):
        kinds = [s.kind for s in load_recipe(base_recipe(quick), tmp_path).steps]
        assert kinds == ["world", "tokenizer", "shards", "pretrain", "sft"]
    demo = load_recipe(Path(__file__).parents[1] / "recipes" / "cpu-demo.yaml", tmp_path)
    base = load_recipe(base_recipe(False), tmp_path)
    # The full base is the demo's first stages (SFT counted in steps, not seconds): a finished
    # demo can stand in (--base).
    same = [s.argv for s in base.steps][:4]
    assert same == [s.argv for s in demo.steps][:4]
    assert "--max-steps" in base.step("sft").argv and "--max-time" not in base.step("sft").argv
