"""`lmforge eval ladder`: tiny rungs, tiny budgets; outputs, verdicts, resuming, bad input."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_clean_error, run_lmforge_inprocess
from world_helpers import build_tiny_world

from lmforge.common import LmforgeError
from lmforge.experiments import size_ladder as L
from lmforge.experiments.size_ladder_config import LadderConfig, parse_size
from lmforge.experiments.size_ladder_report import gain, markdown_table, verdicts

KILLABLE = Path(__file__).with_name("_killable.py")
# Two rungs a CPU trains in a second: 1 layer of width 16 and 32 (2 heads).
FLAGS = ["--sizes", "1x16x2", "1x32x2", "--steps-per-model", "4", "--seconds-per-model",
         "100000", "--save-every", "2", "--k", "0", "1", "--seeds", "1", "--limit", "4",
         "--vocab-size", "300", "--batch-size", "2", "--context", "512", "--warmup", "1"]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return build_tiny_world(tmp_path_factory.mktemp("ladder") / "world")


def ladder(world, out, *extra):
    return run_lmforge_inprocess("eval", "ladder", "--world", world, "--out", out, *FLAGS, *extra)


def test_ladder_trains_evaluates_and_reports(world, tmp_path):
    out = tmp_path / "lad"
    r = ladder(world, out, "--quiet")
    assert r.returncode == 0, r.stderr
    assert "| 1x16x2 |" in r.stdout and "| 1x32x2 |" in r.stdout
    doc = json.loads((out / "ladder.json").read_text())
    assert [g["name"] for g in doc["rungs"]] == ["1x16x2", "1x32x2"]
    small, big = doc["rungs"]
    assert small["params"] < big["params"] and small["train"]["steps"] == 4
    assert small["train"]["resumed"] is False and small["train"]["val_loss"] > 0
    assert set(small["evals"]) == {"lambada", "trivia", "sentiment"}
    lam = small["evals"]["lambada"]
    assert lam["metrics"] == ["accuracy", "choice accuracy", "answer log-prob"]
    assert lam["test"] == 4 and [row["k"] for row in lam["rows"]] == [0, 1]
    g = lam["gains"]["answer log-prob"]  # paired over the same 4 items
    assert g["k"] == 1 and g["n"] == 4 and g["gain"] == pytest.approx(g["few"] - g["zero"])
    sent = small["evals"]["sentiment"]
    assert sent["metrics"] == ["accuracy", "answer log-prob"]
    assert sent["rows"][0]["answer log-prob"]["mean"] < 0 and sent["gains"]["accuracy"]["n"] == 4
    assert "100000 s of wall time, at most 4 steps" in doc["budget_rule"]
    for key in ("lambada/accuracy", "lambada/choice accuracy", "trivia/exact match",
                "sentiment/accuracy", "lambada/answer log-prob", "trivia/answer log-prob",
                "sentiment/answer log-prob"):  # fmt: skip
        v = doc["verdicts"][key]
        assert set(v["status"]) == {"1x16x2", "1x32x2"} and v["text"]
    report = (out / "report.md").read_text()
    assert "## Verdicts" in report and "budget rule" in report
    assert (out / "plots" / "ladder.png").stat().st_size > 0
    assert (out / "plots" / "gain.png").stat().st_size > 0
    assert sorted(p.name for p in (out / "rungs").iterdir()) == ["1x16x2.json", "1x32x2.json"]

    # A second run without --resume is refused; with it the finished rungs are kept (a
    # rung is a name: --sizes may drop or add some).
    assert_clean_error(ladder(world, out), "already holds a size ladder", "--resume", "--force")
    before = [(out / "rungs" / f"{n}.json").stat().st_mtime_ns for n in ("1x16x2", "1x32x2")]
    ckpt = out / "runs" / "1x32x2" / "checkpoints" / "step_4" / "model.safetensors"
    weights = ckpt.read_bytes()
    r = ladder(world, out, "--resume", "--quiet", "--sizes", "1x32x2")
    assert r.returncode == 0, r.stderr
    assert (out / "rungs" / "1x32x2.json").stat().st_mtime_ns == before[1]
    assert ckpt.read_bytes() == weights  # not trained again
    doc = json.loads((out / "ladder.json").read_text())
    assert [g["name"] for g in doc["rungs"]] == ["1x32x2"]
    # A setting that changes what a rung means is refused on resume.
    assert_clean_error(ladder(world, out, "--resume", "--lr", "0.5"), "lr=", "--force")


def test_an_interrupted_rung_resumes_from_its_checkpoint(world, tmp_path):
    """The rung's pretraining stopped at step 2 (its checkpoint) continues to step 4."""
    out = tmp_path / "lad"
    cfg = LadderConfig(world=str(world), out=str(out), sizes=["1x16x2"], steps_per_model=4,
                       seconds_per_model=100000, save_every=2, k=[0], seeds=1, limit=2,
                       vocab_size=300, batch_size=2, warmup=1, evals=["trivia"])  # fmt: skip
    out.mkdir()
    L.save_config(cfg, out / L.CONFIG_FILE)
    data = L._prepare(cfg, world, out)
    from lmforge.stages.pretrain import pretrain

    pcfg = L.pretrain_config(cfg, "1x16x2", data, out / "runs" / "1x16x2")
    pretrain(dataclasses.replace(pcfg, max_steps=2))  # as if stopped after its checkpoint
    result = L.run_ladder(dataclasses.replace(cfg, resume=True))
    (rung,) = result["rungs"]
    assert rung["train"]["resumed"] is True and rung["train"]["steps"] == 4
    state = json.loads((out / "runs" / "1x16x2" / "checkpoints" / "step_4" /
                        "trainer_state.json").read_text())  # fmt: skip
    assert state["step"] == 4


@pytest.mark.slow
def test_sigint_then_resume_from_the_command_line(world, tmp_path):
    out = tmp_path / "lad"
    args = ["eval", "ladder", "--world", str(world), "--out", str(out), *FLAGS, "--quiet"]
    r = subprocess.run(
        [sys.executable, str(KILLABLE), "--signal-after-step", "1", "--", *args],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert r.returncode == 130, r.stderr
    assert "interrupted" in r.stderr and "--resume" in r.stderr
    assert not (out / "rungs").exists() or not list((out / "rungs").iterdir())
    r = subprocess.run([sys.executable, "-m", "lmforge", *args, "--resume"], capture_output=True,
                       text=True, timeout=300)  # fmt: skip
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "ladder.json").read_text())
    assert doc["rungs"][0]["train"]["resumed"] is True
    assert [g["train"]["steps"] for g in doc["rungs"]] == [4, 4]


def test_bad_input_is_one_line(world, tmp_path):
    assert_clean_error(ladder(tmp_path / "nowhere", tmp_path / "o"), "nowhere", "lmforge world")
    assert_clean_error(ladder(world, tmp_path / "o", "--sizes", "big"), "sizes", "unknown size")
    assert_clean_error(ladder(world, tmp_path / "o", "--sizes", "2x30x4"), "even size")
    assert_clean_error(ladder(world, tmp_path / "o", "--evals", "mmlu"), "evals", "mmlu")
    assert_clean_error(ladder(world, tmp_path / "none", "--resume"), "no ladder to resume")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert_clean_error(ladder(world, other, "--force"), "does not hold a size ladder")
    assert_clean_error(ladder(world, world / "inside"), "inside the world")
    assert_clean_error(ladder(world, tmp_path / "o", "--k", "0", "1000"), "k=1000")
    assert not (tmp_path / "o").exists()
    # Prompts that do not fit the rungs' context: refused before any rung trains.
    short = tmp_path / "short"
    assert_clean_error(ladder(world, short, "--context", "64", "--k", "0", "2"), "context of 64")
    assert not (short / "runs").exists()


def test_sizes_and_verdict_rules():
    assert parse_size("15m") == (8, 384, 6) and parse_size("2x64x2") == (2, 64, 2)
    with pytest.raises(LmforgeError):
        parse_size("0x64x2")

    def rung(name, zero, few, n=100):
        row = lambda k, m: {"k": k, "seeds": 1, "accuracy": {"mean": m, "std": 0.0}}  # noqa: E731
        return {"name": name, "params": 1, "train": {"steps": 1, "tokens_seen": 1},
                "evals": {"sentiment": {"metrics": ["accuracy"], "test": n,
                                        "rows": [row(0, zero), row(4, few)]}}}  # fmt: skip

    threshold = {"rungs": [rung("a", 0.5, 0.52), rung("b", 0.5, 0.51), rung("c", 0.5, 0.8),
                           rung("d", 0.55, 0.9)]}  # fmt: skip
    v = verdicts(threshold)["sentiment/accuracy"]
    assert v["supported"] and v["status"] == {"a": "no clear change", "b": "no clear change",
                                              "c": "helps", "d": "helps"}  # fmt: skip
    assert "from" not in v["text"] or "c" in v["text"]
    assert abs(gain(threshold["rungs"][2], "sentiment", "accuracy")["gain"] - 0.3) < 1e-12
    flat = {"rungs": [rung("a", 0.5, 0.5), rung("b", 0.51, 0.5)]}
    v = verdicts(flat)["sentiment/accuracy"]
    assert not v["supported"] and "no rung gains" in v["text"] and "chance" in v["text"]
    every = {"rungs": [rung("a", 0.3, 0.9), rung("b", 0.3, 0.95)]}
    assert "every rung" in verdicts(every)["sentiment/accuracy"]["text"]
    assert "| a |" in markdown_table(threshold) and "✓" in markdown_table(threshold)
