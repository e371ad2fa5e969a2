"""`lmforge eval rl`: PPO / GRPO runs side by side from their per-iteration tables."""

from __future__ import annotations

import json

from conftest import assert_clean_error, run_lmforge_inprocess

from lmforge.stages.ppo_report import side_by_side_table


def _rows(scores, kls, step_s=2.0):
    return [
        {"iteration": i + 1, "episodes": 64, "mean_score": s, "kl": k, "rollout_s": 0.5,
         "update_s": step_s - 0.5, "wall_s": step_s * (i + 1)}
        for i, (s, k) in enumerate(zip(scores, kls))
    ]  # fmt: skip


def _run(tmp_path, name, rows):
    run = tmp_path / name
    (run / "ppo").mkdir(parents=True)
    (run / "ppo" / "iterations.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return run


def test_table_reads_first_last_and_best_windows():
    rows = _rows([0.1, 0.2, 0.9, 0.8, 0.3], [0.0, 0.1, 0.2, 0.3, 0.4])
    md = side_by_side_table({"ppo": rows}, window=2).splitlines()
    assert md[0].startswith("| run | iterations | episodes | wall s |")
    # first 2: 0.15, last 2: 0.55, best 2 in a row: (0.9 + 0.8) / 2, KL of the last 2: 0.35
    assert md[2] == "| ppo | 5 | 320 | 10 | 2 / 8 | 0.150 → 0.550 | 0.850 | 0.35 |"
    short = side_by_side_table({"grpo": rows[:1]}, window=5).splitlines()[2]
    assert short == "| grpo | 1 | 64 | 2 | 0 / 2 | 0.100 → 0.100 | 0.100 | 0.00 |"


def test_cli_prints_the_table_plots_and_refuses_other_folders(tmp_path):
    ppo = _run(tmp_path, "ppo", _rows([0.1, 0.3, 0.5], [0.0, 0.2, 0.4]))
    grpo = _run(tmp_path, "grpo", _rows([0.2, 0.4, 0.6], [0.0, 0.1, 0.1], step_s=1.0))
    png = tmp_path / "curves.png"
    r = run_lmforge_inprocess("eval", "rl", f"PPO={ppo}", str(grpo), "--plot", str(png))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[2].startswith("| PPO | 3 | 192 | 6 |") and lines[3].startswith("| grpo | 3 |")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert_clean_error(run_lmforge_inprocess("eval", "rl", str(tmp_path)), "iterations.jsonl")
    assert_clean_error(run_lmforge_inprocess("eval", "rl", str(ppo), f"ppo={grpo}"), "twice")
    assert_clean_error(run_lmforge_inprocess("eval", "rl", str(ppo), "--window", "0"), "--window")
