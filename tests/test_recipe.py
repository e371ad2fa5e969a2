"""`lmforge recipe`: YAML checks, the root folder policy, the plan, the report card's verdicts,
and (slow) the whole tiny recipe end to end, killed after pretraining and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import assert_clean_error, run_lmforge_inprocess

from lmforge.common import LmforgeError
from lmforge.eval.tasks_stats import Accuracy
from lmforge.experiments.recipe import MARKER, STATE_FILE
from lmforge.experiments.recipe_config import load_recipe, to_flags
from lmforge.experiments.recipe_report import ppo_verdict, reward_verdict, to_html, verdict

REPO = Path(__file__).resolve().parents[1]

# Every stage, a few seconds each: a tiny world, a 0.16M-parameter LLaMA, a handful of steps.
TINY = """\
stages:
  - name: world
    people: 20
    places: 5
    events: 6
    pretrain_chars: 60000
    train_per_family: 20
    val_per_family: 5
    test_per_family: 5
    dialogues_train: 20
    dialogues_val: 5
    dialogues_test: 5
    preferences_train: 40
    preferences_val: 16
    rankings_train: 10
    rankings_val: 5
    classification_train_per_label: 5
    classification_test_per_label: 5
  - name: tokenizer
    kind: bpe
    vocab_size: 400
  - name: shards
    val_fraction: 0.1
  - name: pretrain
    arch: llama
    preset: tiny
    model: {block_size: 256}
    seq_len: 128
    max_steps: 30
    batch_size: 8
    threads: 1
    dtype: fp32
  - name: sft
    max_steps: 10
    batch_size: 8
    threads: 1
    dtype: fp32
  - name: reward
    epochs: null
    max_steps: 5
    batch_size: 8
    threads: 1
    dtype: fp32
  - name: reward_eval
    batch_size: 16
  - name: rs
    reward: checker
    max_prompts: 8
    min_reward: 0
    n: 2
    steps_per_iteration: 2
    max_new_tokens: 12
    batch_size: 4
    threads: 1
    dtype: fp32
  - name: ppo
    reward: checker
    iterations: 2
    episodes: 4
    minibatches: 1
    ppo_epochs: 1
    max_new_tokens: 12
    threads: 1
    dtype: fp32
  - name: eval
    limit: 6
    max_new_tokens: 12
    batch_size: 8
"""
FOLDERS = ("world", "tokenizer", "shards", "run", "sft", "rm", "eval_rm", "rs", "ppo",
           "eval_base", "eval_sft", "eval_rs", "eval_ppo")  # fmt: skip


def write(tmp_path: Path, text: str, name: str = "r.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def recipe(tmp_path: Path, out: Path, *extra: str, text: str = TINY):
    return run_lmforge_inprocess("recipe", "--recipe", write(tmp_path, text), "--out", out, *extra)


def line_of(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


# --- the YAML ------------------------------------------------------------------------------


def test_both_shipped_recipes_load_and_wire_every_stage(tmp_path):
    for name in ("cpu-demo.yaml", "gpu-1x.yaml"):
        r = load_recipe(REPO / "recipes" / name, tmp_path / "out")
        names = [s.name for s in r.steps]
        assert names[:9] == ["world", "tokenizer", "shards", "pretrain", "sft", "reward",
                             "reward_eval", "rs", "ppo"]  # fmt: skip
        assert names[-1] == "eval_compare"
        ppo = r.step("ppo").argv
        assert ppo[ppo.index("--from") + 1] == str(tmp_path / "out" / "rs")
    demo = load_recipe(REPO / "recipes" / "cpu-demo.yaml", "d").step("pretrain").argv
    # scripts/demo.sh's settings
    for flag, value in (("--max-time", "210"), ("--max-steps", "none"),
                        ("--model.block-size", "256"), ("--preset", "cpu-small")):  # fmt: skip
        assert demo[demo.index(flag) + 1] == value


def test_the_math_specialist_recipe_is_the_demos_first_stages_in_steps(tmp_path):
    r = load_recipe(REPO / "recipes" / "cpu-math-specialist.yaml", tmp_path / "out")
    assert [s.name for s in r.steps][:5] == ["world", "tokenizer", "shards", "pretrain", "sft"]
    assert "--split-digits" in r.step("tokenizer").argv
    for stage, steps in (("pretrain", "220"), ("sft", "560")):
        argv = r.step(stage).argv
        assert argv[argv.index("--max-steps") + 1] == steps
        assert argv[argv.index("--max-time") + 1] == "none"


def test_options_become_the_verbs_flags():
    flags = to_flags({"max_time": 5, "max_steps": None, "compile": True, "dedup": False,
                      "data": ["a", "b"], "init_from": "x"})  # fmt: skip
    assert flags == ["--max-time", "5", "--max-steps", "none", "--compile", "--no-dedup",
                     "--data", "a", "b", "--from", "x"]  # fmt: skip


def test_unknown_stage_names_the_line_and_writes_nothing(tmp_path):
    text = TINY.replace("name: rs", "name: rejection")
    out = tmp_path / "out"
    r = recipe(tmp_path, out, text=text)
    assert_clean_error(r, f"r.yaml:{line_of(text, 'rejection')}", "unknown stage 'rejection'")
    assert not out.exists()


def test_unknown_option_names_the_line_and_field(tmp_path):
    text = TINY.replace("    seq_len: 128\n", "    seq_lenn: 128\n")
    out = tmp_path / "out"
    r = recipe(tmp_path, out, text=text)
    assert_clean_error(r, f"r.yaml:{line_of(text, 'seq_lenn')}", "pretrain", "seq_lenn")
    assert not out.exists()


def test_bad_value_is_refused_up_front(tmp_path):
    r = recipe(tmp_path, tmp_path / "out", text=TINY.replace("dtype: fp32", "dtype: fp13", 1))
    assert_clean_error(r, "pretrain", "dtype", "fp13")


def test_a_stage_without_its_input_is_refused(tmp_path):
    # ppo with no sft or rs before it
    text = TINY.split("  - name: sft")[0] + "  - name: ppo\n    reward: checker\n"
    r = recipe(tmp_path, tmp_path / "out", text=text)
    assert_clean_error(r, "stage ppo", "needs a rs or sft stage")
    # `from:` naming a stage that comes later
    text = TINY.replace("  - name: sft\n", "  - name: sft\n    from: ppo\n")
    r = recipe(tmp_path, tmp_path / "out", text=text)
    assert_clean_error(r, f"r.yaml:{line_of(text, 'from: ppo')}", "not an earlier stage")
    # no world before the stages that read its files
    text = "stages:\n  - name: sft\n"
    assert_clean_error(recipe(tmp_path, tmp_path / "out", text=text), "world")
    assert not (tmp_path / "out").exists()


def test_empty_or_malformed_recipes(tmp_path):
    assert_clean_error(recipe(tmp_path, tmp_path / "o", text="stages: []\n"), "non-empty list")
    assert_clean_error(recipe(tmp_path, tmp_path / "o", text="stage: []\n"), "unknown top-level")
    text = TINY + "  - name: world\n"
    assert_clean_error(recipe(tmp_path, tmp_path / "o", text=text), "appears twice")


# --- the root folder -----------------------------------------------------------------------


def test_a_folder_lmforge_did_not_write_is_refused(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    r = recipe(tmp_path, out, "--force")
    assert_clean_error(r, "not made by `lmforge recipe`")
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


def test_another_recipes_runs_are_refused_and_not_touched(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / MARKER).write_text(json.dumps({"kind": "lmforge recipe", "recipe": "other.yaml"}))
    state = {"steps": {"world": {"status": "done", "folder": str(out / "world"),
                                 "recipe_command": "lmforge world --size large"}}}  # fmt: skip
    (out / STATE_FILE).write_text(json.dumps(state))
    before = (out / STATE_FILE).read_text()
    assert_clean_error(recipe(tmp_path, out), "stage world was run with other settings")
    assert (out / STATE_FILE).read_text() == before
    # and a recipe folder inside another recipe's folder
    assert_clean_error(recipe(tmp_path, out / "inner"), "inside the recipe folder")


def test_dry_run_prints_the_plan_and_writes_nothing(tmp_path):
    out = tmp_path / "out"
    r = recipe(tmp_path, out, "--dry-run", "--until", "pretrain")
    assert r.returncode == 0, r.stderr
    assert "lmforge pretrain --data" in r.stdout and "lmforge sft" not in r.stdout
    assert not out.exists()
    r = recipe(tmp_path, out, "--dry-run", "--only", "eval")
    planned = [ln.split()[0] for ln in r.stdout.splitlines()[1:]]
    assert planned == ["eval_base", "eval_sft", "eval_rs", "eval_ppo", "eval_compare"]
    assert "lmforge world" not in r.stdout
    assert_clean_error(recipe(tmp_path, out, "--dry-run", "--only", "nope"), "no stage 'nope'")


def test_a_finished_stage_is_skipped_and_force_starts_over(tmp_path):
    text = TINY.split("  - name: tokenizer")[0]  # the world alone: a few seconds
    out = tmp_path / "out"
    r = recipe(tmp_path, out, text=text)
    assert r.returncode == 0, r.stdout + r.stderr
    rec = _state(out)["world"]
    assert rec["status"] == "done" and rec["command"].startswith("lmforge world --out")
    assert (out / "world" / "manifest.json").is_file() and (out / "report.md").is_file()
    assert (out / "logs" / "world.log").is_file() and (out / MARKER).is_file()
    stamp = (out / "world").stat().st_mtime_ns
    r = recipe(tmp_path, out, text=text)
    assert "world: already complete" in r.stdout
    assert _state(out)["world"] == rec and (out / "world").stat().st_mtime_ns == stamp
    (out / "notes.txt").write_text("mine")  # --force deletes only what the recipe wrote
    r = recipe(tmp_path, out, "--force", text=text)
    assert r.returncode == 0, r.stderr
    assert "already complete" not in r.stdout and _state(out)["world"]["started"]
    assert (out / "notes.txt").read_text() == "mine"


# --- the report card -----------------------------------------------------------------------


def test_verdicts_come_from_the_numbers():
    worse = verdict("PPO", Accuracy(31, 100), Accuracy(30, 100), "rs")
    assert worse == "PPO: accuracy 31.0% -> 30.0% (-1.0 points vs rs): no gain at this scale"
    big = verdict("SFT", Accuracy(5, 200), Accuracy(120, 200), "base")
    assert "+57.5 points" in big and "beyond the 95% intervals" in big
    small = verdict("RS", Accuracy(50, 100), Accuracy(52, 100), "sft")
    assert "+2.0 points" in small and "not conclusive" in small


def test_reward_and_ppo_verdicts_come_from_the_numbers():
    chance = reward_verdict({"accuracy": 0.5, "correct": 8, "n": 16, "ci95": [0.28, 0.72]})
    assert chance.endswith("not better than chance (50%) at this scale")
    good = reward_verdict({"accuracy": 0.9, "correct": 90, "n": 100, "ci95": [0.83, 0.94]})
    assert "better than chance (50%) beyond" in good
    rows = [{"mean_score": 0.25, "kl": 0.0}, {"mean_score": 0.2, "kl": 0.3}]
    assert "0.250 -> 0.200 over 2 iterations (did not rise)" in ppo_verdict(rows)
    assert "(rose)" in ppo_verdict(rows[::-1])


def test_html_is_self_contained(tmp_path):
    png = tmp_path / "p.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    page = to_html([("h1", "t"), ("table", "| a | b |\n|---|---|\n| <x> | **y** |"),
                    ("img", png)])  # fmt: skip
    assert "data:image/png;base64," in page and "&lt;x&gt;" in page
    assert "src='http" not in page and "src='p.png'" not in page


def test_a_load_error_is_lmforges(tmp_path):
    with pytest.raises(LmforgeError, match="no such config file"):
        load_recipe(tmp_path / "missing.yaml")


# --- end to end ----------------------------------------------------------------------------


def _state(out: Path) -> dict:
    try:
        return json.loads((out / STATE_FILE).read_text())["steps"]
    except (OSError, ValueError, KeyError):
        return {}


@pytest.mark.slow
def test_the_tiny_recipe_end_to_end_killed_and_resumed(tmp_path):
    yaml_path = write(tmp_path, TINY)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lmforge", "recipe", "--recipe", str(yaml_path), "--out", str(out)]
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.time() + 120
            while _state(out).get("pretrain", {}).get("status") != "done":
                assert proc.poll() is None, (tmp_path / "first.log").read_text()
                assert time.time() < deadline, "pretrain did not finish in 120 s"
                time.sleep(0.2)
        finally:
            os.kill(proc.pid, signal.SIGKILL)  # the recipe only: its stage must die with it
            proc.wait()
    first = _state(out)
    done_before = [n for n, r in first.items() if r.get("status") == "done"]
    assert {"world", "tokenizer", "shards", "pretrain"} <= set(done_before)
    stamps = {n: (Path(first[n]["folder"]).stat().st_mtime_ns, first[n]) for n in done_before}

    r = subprocess.run(cmd, capture_output=True, text=True, timeout=170)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr
    for n in done_before:  # finished stages were not redone
        assert f"{n}: already complete" in r.stdout
        folder_mtime, rec = stamps[n]
        assert Path(rec["folder"]).stat().st_mtime_ns == folder_mtime, n
        assert _state(out)[n] == rec, n
    assert "lmforge chat --run" in r.stdout and "lmforge serve --run" in r.stdout
    for name in FOLDERS:
        assert (out / name).is_dir(), name
    state = _state(out)
    assert all(rec["status"] == "done" for rec in state.values()), state
    report = (out / "report.md").read_text()
    for needle in ("## Stages", "| pretrain | done |", "val bits/byte",
                   "| group | base | sft | rs | ppo |", "**overall**", "task family:",
                   "pairwise accuracy by margin", "PPO over 2 iterations", "## Machine and versions",
                   "SFT: accuracy", "PPO: accuracy", "Reward model: pairwise accuracy", "PPO rollouts:"):  # fmt: skip
        assert needle in report, needle
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") >= 5 and "src='http" not in page
