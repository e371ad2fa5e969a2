"""`lmforge rs`: the best-of-n curve, best-sample selection, sampling, the stage, resume, bad input.

The policy is the tiny LLaMA of `tiny_run` fine-tuned for 40 SFT steps on "Where did
NAME go?" conversations (`sft_helpers.chat_records`); the prompts ask the same
question with the place's last word as a `choice` answer, so the world's checker
scores the samples and a temperature of 0.5 gives a mix of right and wrong ones.
Stage runs go through the CLI in this process (SIGINTs too: sent to this process).
"""
# ruff: noqa: F811 (pytest fixtures imported from test_pretrain_helpers are redefined as arguments)

from __future__ import annotations

import itertools
import json
import math
import random
import signal
import statistics
from pathlib import Path

import pytest
import torch
from conftest import assert_clean_error, run_lmforge_inprocess
from sft_helpers import PLACE_OF, SFT, chat_records, train_losses, write_jsonl
from test_pretrain_helpers import (  # noqa: F401 (fixtures)
    NAMES,
    PLACES,
    assert_same_weights,
    cli,
    tiny_run,
    tiny_shards,
)

from lmforge.runs import load_run
from lmforge.runs.checkpoint import latest_checkpoint, open_checkpoint
from lmforge.stages.rs_curve import (
    best_of_n_curve,
    curve_sizes,
    describe_curve,
    expected_max,
    expected_median,
)
from lmforge.stages.rs_sampling import (
    PromptResult,
    SamplingSettings,
    choose,
    prompt_seed,
    sample_round,
    select_best,
    tie_rng,
)

CHOICES = [p.split()[-1] for p in PLACES]  # river, market, mill, forest, station
RS = [
    "--n", "8", "--iterations", "2", "--steps-per-iteration", "3", "--temperature", "0.5",
    "--max-new-tokens", "16", "--batch-size", "4", "--seq-len", "64", "--warmup", "1",
    "--lr", "3e-3", "--threads", "1", "--dtype", "fp32", "--log-every", "1", "--quiet",
]  # fmt: skip


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x]


def place_prompts(names=NAMES) -> list[dict]:
    return [
        {"prompt": f"Where did {n} go?", "answer": PLACE_OF[n].split()[-1],
         "answer_type": "choice", "choices": CHOICES, "task": "places"}
        for n in names
    ]  # fmt: skip


@pytest.fixture(scope="session")  # shared with test_ppo.py
def prompts(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("rs_prompts") / "prompts.jsonl", place_prompts())


@pytest.fixture(scope="session")  # shared with test_ppo.py
def policy(tiny_run, tmp_path_factory) -> Path:
    """A 40-step SFT run of the tiny model on place questions: right about a third of the time."""
    root = tmp_path_factory.mktemp("rs_policy")
    data = write_jsonl(root / "data" / "chat.jsonl", chat_records(40))
    r = run_lmforge_inprocess("sft", "--from", tiny_run, "--data", data, "--out", root / "sft",
                              *SFT, "--max-steps", "40", "--save-every", "0",
                              "--val-fraction", "0")  # fmt: skip
    assert r.returncode == 0, r.stderr
    return root / "sft"


@pytest.fixture(scope="module")
def ref(policy, prompts, tmp_path_factory) -> Path:
    """An uninterrupted run: 2 iterations × 3 steps, checkpoints at 3 and 6."""
    out = tmp_path_factory.mktemp("rs_ref") / "run"
    r = run_lmforge_inprocess("rs", "--from", policy, "--prompts", prompts, "--out", out, *RS,
                              "--save-every", "3")  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


def save_reward_run(tiny_run: Path, out: Path, kind: str) -> Path:
    """A reward-model run: the tiny model with a (seeded, untrained) head of `kind`."""
    from lmforge.models import save_model
    from lmforge.models.heads import HeadModel
    from lmforge.runs import RunLayout
    from lmforge.runs.checkpoint import save_checkpoint

    base = load_run(tiny_run)
    torch.manual_seed(0)
    rm = HeadModel(base.model, kind)
    base.tokenizer.save(RunLayout(out).tokenizer)
    save_checkpoint(out, 0, write_weights=lambda p: save_model(rm, p), optimizer_state={},
                    trainer_state={"stage": "reward", "tokenizer_hash": base.tokenizer.hash})  # fmt: skip
    return out


@pytest.fixture(scope="session")  # shared with test_ppo.py
def reward_run(tiny_run, tmp_path_factory) -> Path:
    return save_reward_run(tiny_run, tmp_path_factory.mktemp("rs_rm") / "rm", "scalar")


# --- the curve -----------------------------------------------------------------------


def test_the_curve_equals_brute_force_over_all_subsets():
    rng = random.Random(0)
    for N in (1, 2, 5, 6):
        rewards = [rng.choice([0.0, 0.25, 0.5, 1.0]) for _ in range(N)]  # ties on purpose
        for n in range(1, N + 1):
            subsets = list(itertools.combinations(rewards, n))
            want_max = sum(max(s) for s in subsets) / len(subsets)
            want_med = sum(statistics.median(s) for s in subsets) / len(subsets)
            assert expected_max(rewards, n) == pytest.approx(want_max, abs=1e-12), (N, n)
            assert expected_median(rewards, n) == pytest.approx(want_med, abs=1e-12), (N, n)
    per_prompt = [[rng.random() for _ in range(4)] for _ in range(3)]
    rows = best_of_n_curve(per_prompt)
    assert [r["n"] for r in rows] == [1, 2, 4]
    for r in rows:
        subsets = [list(itertools.combinations(p, r["n"])) for p in per_prompt]
        assert r["max"] == pytest.approx(
            sum(sum(max(s) for s in ss) / len(ss) for ss in subsets) / 3, abs=1e-12
        )


def test_a_right_or_wrong_reward_gives_pass_at_n():
    rewards = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0]  # c = 2 right of N = 8
    for n in curve_sizes(8):
        assert expected_max(rewards, n) == pytest.approx(1 - math.comb(6, n) / math.comb(8, n))
    assert expected_median(rewards, 1) == pytest.approx(0.25)  # n = 1: the mean


def test_curve_sizes_and_what_the_sentence_says():
    assert curve_sizes(1) == [1] and curve_sizes(8) == [1, 2, 4, 8]
    assert curve_sizes(6) == [1, 2, 4, 6]
    flat = [{"n": 1, "max": 0.5, "median": 0.5}, {"n": 8, "max": 0.9, "median": 0.51}]
    assert "median stays flat" in describe_curve(flat)
    falls = [{"n": 1, "max": 0.3, "median": 0.3}, {"n": 8, "max": 0.8, "median": 0.1}]
    assert "median moves down" in describe_curve(falls)
    same = [{"n": 1, "max": 0.0, "median": 0.0}, {"n": 8, "max": 0.0, "median": 0.0}]
    assert "does not rise" in describe_curve(same)


# --- selection -------------------------------------------------------------------------


def test_the_best_sample_wins_and_ties_go_to_a_seeded_draw():
    assert select_best([0.1, 0.9, 0.3], random.Random(0)) == 1
    assert select_best([float("nan"), 0.2], random.Random(0)) == 1  # NaN counts as lowest
    tied = [1.0, 0.0, 1.0, 1.0, 0.0, 1.0]
    picks = [select_best(tied, tie_rng(7, 1, i)) for i in range(40)]
    assert set(picks) == {0, 2, 3, 5}  # only tied samples, and not always the first one
    again = [select_best(tied, tie_rng(7, 1, i)) for i in range(40)]
    assert picks == again  # the same seed, iteration and prompt: the same pick
    other = [select_best(tied, tie_rng(8, 1, i)) for i in range(40)]
    assert picks != other  # another seed draws otherwise


def test_min_reward_skips_prompts_whose_best_is_below_it():
    def results():
        return [
            PromptResult(i, ["a", "b"], r, [0, 1], ["stop"] * 2, [1, 1])
            for i, r in enumerate([[0.0, 1.0], [0.0, 0.0], [0.4, 0.6], [float("nan")] * 2])
        ]

    got = results()
    choose(got, SamplingSettings(n=2, min_reward=1.0), iteration=1)
    assert [r.kept for r in got] == [True, False, False, False]
    assert got[0].best == 1
    got = results()
    choose(got, SamplingSettings(n=2, min_reward=0.5), iteration=1)
    assert [r.kept for r in got] == [True, False, True, False]
    got = results()
    choose(got, SamplingSettings(n=2, min_reward=None), iteration=1)
    assert all(r.kept for r in got)


def test_skip_solved_leaves_out_prompts_every_sample_solves():
    def results():
        return [
            PromptResult(i, ["a", "b"], r, [0, 1], ["stop"] * 2, [1, 1])
            for i, r in enumerate([[1.0, 1.0], [0.0, 1.0], [0.0, 0.0], [1.0, float("nan")]])
        ]

    got = results()
    choose(got, SamplingSettings(n=2, min_reward=1.0), iteration=1)
    assert [r.solved for r in got] == [True, False, False, False]  # NaN solves nothing
    assert [r.kept for r in got] == [True, True, False, True]
    got = results()
    choose(got, SamplingSettings(n=2, min_reward=1.0, skip_solved=True), iteration=1)
    assert [r.kept for r in got] == [False, True, False, True]
    assert got[1].best == 1 and got[3].best == 0


def test_replay_draws_depend_on_seed_and_iteration_only():
    from lmforge.stages.rs_batches import replay_records
    from lmforge.tokenizers.chat import Conversation

    pool = [
        Conversation.from_dicts([{"role": "user", "content": f"q{i}"},
                                 {"role": "assistant", "content": f"a{i}"}], {"where": f"f:{i + 1}"})
        for i in range(10)
    ]  # fmt: skip
    one = replay_records(pool, kept=3, ratio=1.5, seed=0, iteration=1)
    assert len(one) == 4 and all(r["replay"] for r in one)  # round(1.5 × 3)
    assert one == replay_records(pool, kept=3, ratio=1.5, seed=0, iteration=1)
    assert one != replay_records(pool, kept=3, ratio=1.5, seed=0, iteration=2)
    picks = [r["replay_index"] for r in one]
    assert len(set(picks)) == 4 and picks == sorted(picks)
    assert [r["messages"][0]["content"] for r in one] == [f"q{i}" for i in picks]
    assert len(replay_records(pool, kept=30, ratio=1.0, seed=0, iteration=1)) == 10  # at most all
    assert replay_records(pool, kept=3, ratio=0.0, seed=0, iteration=1) == []


# --- sampling with the engine ----------------------------------------------------------


class LengthReward:
    """A deterministic stand-in reward: the answer's length modulo 3 (gives ties)."""

    def score(self, prompts, texts):
        return [float(len(t) % 3) for t in texts]


def test_samples_depend_only_on_the_prompt_seed_not_on_batching_or_share(policy, prompts):
    from lmforge.data.preferences import read_prompts
    from lmforge.tokenizers.chat import generation_prompt

    run = load_run(policy)
    convs = read_prompts([str(prompts)])
    ids = [generation_prompt(run.tokenizer, c.messages) for c in convs]
    base = dict(n=4, temperature=1.0, max_new_tokens=8, seed=5)
    one = sample_round(run.model, run.tokenizer, convs, ids, LengthReward(),
                       SamplingSettings(**base, batch_size=1), 2)  # fmt: skip
    six = sample_round(run.model, run.tokenizer, convs, ids, LengthReward(),
                       SamplingSettings(**base, batch_size=6), 2)  # fmt: skip
    assert [r.texts for r in one.results] == [r.texts for r in six.results]
    assert one.samples == 6 * 4 and len({t for r in six.results for t in r.texts}) > 6
    r0 = six.results[0]
    assert r0.seeds == [prompt_seed(5, 2, 0) + 1_000_003 * j for j in range(4)]
    assert [r.best for r in one.results] == [r.best for r in six.results]
    for r in six.results:
        assert r.rewards[r.best] == max(r.rewards) and r.kept

    # Two processes' interleaved shares sample what one process samples for those prompts.
    class Share:
        def __init__(self, rank):
            self.rank, self.world_size, self.distributed = rank, 2, False

    for rank in (0, 1):
        part = sample_round(run.model, run.tokenizer, convs, ids, LengthReward(),
                            SamplingSettings(**base, batch_size=3), 2, ctx=Share(rank))  # fmt: skip
        assert [r.index for r in part.results] == list(range(rank, 6, 2))
        assert [r.texts for r in part.results] == [six.results[i].texts for i in range(rank, 6, 2)]
    # Another iteration samples otherwise.
    three = sample_round(run.model, run.tokenizer, convs, ids, LengthReward(),
                         SamplingSettings(**base, batch_size=6), 3)  # fmt: skip
    assert [r.texts for r in three.results] != [r.texts for r in six.results]


# --- the stage -------------------------------------------------------------------------


def test_the_run_folder_and_every_iterations_files(ref, policy, prompts):
    from lmforge.data.instructions import read_instructions
    from lmforge.data.world.checkers import check

    for name in ("config.yaml", "tokenizer/tokenizer.json", "metrics.jsonl", "report.md",
                 "plots/loss.png", "checkpoints/step_3", "checkpoints/step_6"):  # fmt: skip
        assert (ref / name).exists(), name
    ck = open_checkpoint(latest_checkpoint(ref))
    assert ck.step == 6 and ck.state["stage"] == "rs"
    assert ck.state["parent"]["run"] == str(policy.resolve())
    assert ck.state["rs"] == {"iterations": 2, "steps_per_iteration": 3}
    assert [s for s, _ in train_losses(ref)] == list(range(1, 7))
    records = place_prompts()
    kept_total = 0
    for k in (1, 2):
        folder = ref / "rs" / f"iter-{k}"
        samples = read_jsonl(folder / "samples.jsonl")
        assert len(samples) == 6 * 8
        assert [(s["prompt_index"], s["sample_index"]) for s in samples] == [
            (i, j) for i in range(6) for j in range(8)
        ]
        for s in samples:  # the world's checker scored every sample
            assert s["reward"] == check(records[s["prompt_index"]], s["text"])
            assert s["source"] == f"{prompts}:{s['prompt_index'] + 1}"
        best = read_jsonl(folder / "best.jsonl")
        kept = [s for s in samples if s["kept"]]
        assert [(b["prompt_index"], b["sample_index"]) for b in best] == [
            (s["prompt_index"], s["sample_index"]) for s in kept
        ]
        for b in best:  # a kept sample is right (--min-reward auto: 1 with the checker)
            assert b["reward"] == 1.0 and b["answer"] == records[b["prompt_index"]]["answer"]
            text = next(s["text"] for s in kept if s["prompt_index"] == b["prompt_index"])
            assert b["messages"] == [
                {"role": "user", "content": records[b["prompt_index"]]["prompt"]},
                {"role": "assistant", "content": text},
            ]
        by_prompt = [[s["reward"] for s in samples if s["prompt_index"] == i] for i in range(6)]
        assert {b["prompt_index"] for b in best} == {
            i for i, r in enumerate(by_prompt) if max(r) == 1
        }
        assert 0 < len(best) < 6  # the mix the fixture is built for: some kept, some skipped
        kept_total += len(best)
        # `lmforge sft --data` reads best.jsonl as conversations.
        assert len(read_instructions([str(folder / "best.jsonl")]).conversations) == len(best)
        curve = json.loads((folder / "curve.json").read_text())
        assert curve["curve"] == best_of_n_curve(by_prompt)
        assert curve["samples"] == 48 and curve["kept"] == len(best)
        assert curve["samples_per_s"] > 0 and curve["iteration"] == k
        assert (folder / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        table = (folder / "curve.md").read_text()
        assert "| 8 |" in table and "expected max reward" in table
    report = (ref / "report.md").read_text()
    assert "iterations sampled | 2 of 2" in report and "rs/iter-2/curve.png" in report
    assert kept_total > 0


def test_each_iteration_samples_with_the_live_policy(ref, prompts):
    """Iteration 2 is sampled at step 4 with the weights after step 3 (the step_3 checkpoint)."""
    from lmforge.data.preferences import read_prompts
    from lmforge.tokenizers.chat import generation_prompt

    run = load_run(ref, step=3)
    convs = read_prompts([str(prompts)])
    ids = [generation_prompt(run.tokenizer, c.messages) for c in convs]
    settings = SamplingSettings(n=8, temperature=0.5, max_new_tokens=16, seed=1337, min_reward=1.0)
    rnd = sample_round(run.model, run.tokenizer, convs, ids, LengthReward(), settings, 2)
    samples = read_jsonl(ref / "rs" / "iter-2" / "samples.jsonl")
    assert [t for r in rnd.results for t in r.texts] == [s["text"] for s in samples]
    first = read_jsonl(ref / "rs" / "iter-1" / "samples.jsonl")
    assert [s["text"] for s in first] != [s["text"] for s in samples]


@pytest.mark.parametrize(
    "stop_before",
    [pytest.param(2, marks=pytest.mark.slow, id="mid-iteration-1"),
     pytest.param(4, id="mid-iteration-2")],
)  # fmt: skip
def test_interrupted_then_resumed_is_bitwise_equal(
    stop_before, ref, policy, prompts, tmp_path, capsys, monkeypatch
):
    """A real SIGINT before step `stop_before` (tests/_killable.py's hook): the loop saves the
    step it is in and exits 130; the resume re-reads that iteration's kept samples (no new
    sampling) and samples the next iteration with the restored weights."""
    from _killable import SignalAfterStep

    import lmforge.stages.rs as stage

    real = stage.train

    def train(*a, hooks=(), **kw):
        return real(*a, hooks=[*hooks, SignalAfterStep(stop_before - 1, signal.SIGINT)], **kw)

    monkeypatch.setattr(stage, "train", train)
    out = tmp_path / "run"
    args = ["rs", "--from", policy, "--prompts", prompts, "--out", out, *RS, "--save-every", "3"]
    r = cli(capsys, *args)
    monkeypatch.undo()
    assert r.returncode == 130, r.stderr
    assert latest_checkpoint(out).name == f"step_{stop_before}"
    state = open_checkpoint(latest_checkpoint(out)).state["data"][0]
    assert state["iteration"] == (1 if stop_before < 3 else 2)
    assert not (out / "rs" / "iter-2").exists() or stop_before > 3
    r = cli(capsys, "rs", "--out", out, "--resume", "--quiet")
    assert r.returncode == 0, r.stderr
    assert_same_weights(out / "checkpoints" / "step_6", ref / "checkpoints" / "step_6")
    assert train_losses(out) == train_losses(ref)
    for k in (1, 2):
        for name in ("samples.jsonl", "best.jsonl"):
            assert (out / "rs" / f"iter-{k}" / name).read_bytes() == (
                ref / "rs" / f"iter-{k}" / name
            ).read_bytes()


def test_skip_solved_and_replay_train_on_hard_prompts_and_sft_data_and_resume_exactly(
    policy, prompts, tmp_path, capsys, monkeypatch
):
    """--skip-solved keeps no prompt whose 8 samples are all right; --replay adds
    round(ratio × kept) SFT conversations per iteration (replay.jsonl); a SIGINT in
    iteration 2 and a resume give the uninterrupted run's weights and files."""
    from _killable import SignalAfterStep

    import lmforge.stages.rs as stage

    sft = write_jsonl(tmp_path / "sft.jsonl", chat_records(12))
    extra = [
        *RS,
        "--skip-solved",
        "--replay",
        sft,
        "--replay-ratio",
        "2",
        "--temperature",
        "0.2",
        "--n",
        "4",
    ]
    ref = tmp_path / "ref"
    r = cli(capsys, "rs", "--from", policy, "--prompts", prompts, "--out", ref, *extra)
    assert r.returncode == 0, r.stderr
    pool = {json.dumps(x["messages"]) for x in read_jsonl(sft)}
    kept_any = solved_any = False
    for k in (1, 2):
        folder = ref / "rs" / f"iter-{k}"
        samples = read_jsonl(folder / "samples.jsonl")
        by_prompt = [[s["reward"] for s in samples if s["prompt_index"] == i] for i in range(6)]
        best = read_jsonl(folder / "best.jsonl")
        assert {b["prompt_index"] for b in best} == {
            i for i, r in enumerate(by_prompt) if max(r) == 1 and min(r) < 1
        }
        replayed = read_jsonl(folder / "replay.jsonl")
        assert len(replayed) == min(12, 2 * len(best))
        assert all(json.dumps(x["messages"]) in pool and x["replay"] for x in replayed)
        curve = json.loads((folder / "curve.json").read_text())
        assert curve["solved"] == sum(min(r) == 1 for r in by_prompt)
        assert curve["replayed"] == len(replayed) and curve["skip_solved"] is True
        kept_any |= bool(best)
        solved_any |= curve["solved"] > 0
    assert kept_any and solved_any  # both paths taken (temperature 0.2: some prompts sure)
    report = (ref / "report.md").read_text()
    assert "solved prompts are left out" in report and "replay: 12 SFT conversations" in report

    real = stage.train

    def train(*a, hooks=(), **kw):
        return real(*a, hooks=[*hooks, SignalAfterStep(4, signal.SIGINT)], **kw)

    monkeypatch.setattr(stage, "train", train)
    out = tmp_path / "run"
    r = cli(capsys, "rs", "--from", policy, "--prompts", prompts, "--out", out, *extra,
            "--save-every", "3")  # fmt: skip
    monkeypatch.undo()
    assert r.returncode == 130, r.stderr
    r = cli(capsys, "rs", "--out", out, "--resume", "--quiet")
    assert r.returncode == 0, r.stderr
    assert_same_weights(out / "checkpoints" / "step_6", ref / "checkpoints" / "step_6")
    assert train_losses(out) == train_losses(ref)
    for name in ("best.jsonl", "replay.jsonl"):
        assert (out / "rs" / "iter-2" / name).read_bytes() == (
            ref / "rs" / "iter-2" / name
        ).read_bytes()


@pytest.mark.slow
def test_two_processes_sample_and_train_like_one(ref, policy, prompts, tmp_path):
    """torchrun (gloo): each process samples half the prompts; the gathered round is the one
    process's round byte for byte, and 2 × batch 2 follows the curve of 1 × batch 4."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    # torchrun takes `--n` for an abbreviation of its own flags: the alias --num-samples.
    assert RS[:2] == ["--n", "8"]
    rs_args = RS[2:]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lmforge", "rs", "--from", str(policy), "--prompts", str(prompts),
           "--out", str(out), *rs_args, "--save-every", "3", "--batch-size", "2",
           "--num-samples", "8"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("samples.jsonl", "best.jsonl"):
        assert (out / "rs" / "iter-1" / name).read_bytes() == (
            ref / "rs" / "iter-1" / name
        ).read_bytes()
    assert (out / "rs" / "iter-2" / "best.jsonl").is_file()
    two, one = train_losses(out), train_losses(ref)
    assert [s for s, _ in two] == [s for s, _ in one] == list(range(1, 7))
    assert [x for _, x in two[:3]] == pytest.approx([x for _, x in one[:3]], rel=1e-4)
    a = open_checkpoint(latest_checkpoint(out)).state
    assert a["world_size"] == 2


def test_resume_of_a_finished_run_is_complete_and_writes_nothing(ref, capsys):
    before = {p: p.stat().st_mtime_ns for p in ref.rglob("*") if p.is_file()}
    r = cli(capsys, "rs", "--out", ref, "--resume")
    assert r.returncode == 0, r.stderr
    assert "complete" in r.stdout + r.stderr
    assert {p: p.stat().st_mtime_ns for p in ref.rglob("*") if p.is_file()} == before
    # Iteration boundaries are part of the run: another --steps-per-iteration is refused.
    r = cli(
        capsys, "rs", "--out", ref, "--resume", "--iterations", "3", "--steps-per-iteration", "4"
    )
    assert_clean_error(r, "3 steps per iteration", "asks for 4")
    assert {p: p.stat().st_mtime_ns for p in ref.rglob("*") if p.is_file()} == before


def test_max_prompts_takes_a_seeded_subset_and_long_prompts_are_left_out(policy, tmp_path):
    from lmforge.config import build_config
    from lmforge.stages.policy import read_policy_prompts as read_rs_prompts
    from lmforge.stages.rs_config import RSConfig

    long = {**place_prompts()[0], "prompt": "Where did Anna go? " * 20}
    path = write_jsonl(tmp_path / "p.jsonl", [*place_prompts(), long])
    tok = load_run(policy).tokenizer

    def read(**kw):
        cfg = build_config(RSConfig, overrides={"prompts": [str(path)], "out": "x", **kw})
        return read_rs_prompts(cfg, tok, 64)

    convs, ids, summary = read(max_prompts=3)
    assert len(convs) == 3 and "1 too long for a 64-token row left out" in summary
    assert "a seeded subset of 3 used" in summary
    lines = [int(c.meta["where"].rsplit(":", 1)[1]) for c in convs]
    assert lines == sorted(lines) and max(lines) <= 6  # file order; never the long one
    assert [c.meta["where"] for c in read(max_prompts=3)[0]] == [c.meta["where"] for c in convs]
    assert [c.meta["where"] for c in read(max_prompts=3, seed=2)[0]] != [
        c.meta["where"] for c in convs
    ]
    assert len(read()[0]) == 6 and all(len(p) + 2 <= 65 for p in read()[1])


@pytest.mark.parametrize("kind", ["scalar", "likelihood"])
def test_a_reward_model_scores_the_samples(kind, policy, prompts, reward_run, tiny_run, tmp_path,
                                           capsys):  # fmt: skip
    from lmforge.eval.reward_scores import score_responses
    from lmforge.tokenizers.chat import Message

    if kind == "likelihood":
        reward_run = save_reward_run(tiny_run, tmp_path / "lik_rm", kind)

    out = tmp_path / "run"
    r = cli(capsys, "rs", "--from", policy, "--prompts", prompts, "--reward", reward_run,
            "--out", out, *RS, "--iterations", "1", "--n", "3", "--steps-per-iteration", "0")  # fmt: skip
    assert r.returncode == 0, r.stderr
    # --steps-per-iteration 0: about one pass over the prompts' conversations, packed.
    from lmforge.config import build_config
    from lmforge.stages.policy import read_policy_prompts as read_rs_prompts
    from lmforge.stages.rs import default_steps
    from lmforge.stages.rs_config import RSConfig

    run = load_run(policy)
    cfg = build_config(RSConfig, overrides={"prompts": [str(prompts)], "out": "x",
                                            "batch_size": 4, "max_new_tokens": 16})  # fmt: skip
    convs, ids, _ = read_rs_prompts(cfg, run.tokenizer, 64)
    assert open_checkpoint(latest_checkpoint(out)).step == default_steps(
        cfg, run.tokenizer, convs, ids, 64, 1
    )
    samples = read_jsonl(out / "rs" / "iter-1" / "samples.jsonl")
    rm = load_run(reward_run)
    items = [([Message("user", place_prompts()[s["prompt_index"]]["prompt"])], s["text"])
             for s in samples]  # fmt: skip
    want = score_responses(rm.model, rm.tokenizer, items)
    assert [s["reward"] for s in samples] == pytest.approx(want, abs=1e-5)
    assert len({round(x, 6) for x in want}) > 3  # a real spread, not a constant
    best = read_jsonl(out / "rs" / "iter-1" / "best.jsonl")
    assert len(best) == 6  # --min-reward auto: none with a reward model
    for b in best:
        mine = [s["reward"] for s in samples if s["prompt_index"] == b["prompt_index"]]
        assert b["reward"] == max(mine)
    ck = open_checkpoint(latest_checkpoint(out))
    assert ck.state["reward_model"]["run"] == str(reward_run.resolve())


def test_the_graded_reward_gives_partial_credit(prompts):
    from lmforge.data.preferences import read_prompts
    from lmforge.data.world.graded import check_graded
    from lmforge.stages.rewards import open_reward

    convs = read_prompts([str(prompts)])
    reward = open_reward("graded", convs)
    texts = ["Anna went to the river.", "umm the river!!", "the forest", ""]
    got = reward.score(convs[:4], texts)
    assert got == [check_graded(c.meta, t) for c, t in zip(convs[:4], texts)]
    assert reward.default_min == pytest.approx(0.55)
    checker = open_reward("checker", convs)
    assert checker.default_min == 1.0 and set(checker.score(convs[:4], texts)) <= {0.0, 1.0}


# --- bad input: one line, exit 2, nothing written --------------------------------------


def _bad_cases(tmp: Path, policy: Path, prompts: Path, reward_run: Path):
    empty = tmp / "empty.jsonl"
    empty.write_text("")
    no_answer = write_jsonl(tmp / "no_answer.jsonl", [{"prompt": "Where did Anna go?"}])
    blank = tmp / "blank.jsonl"
    blank.write_text("\n\n  \n")
    return {
        "reward model as policy": (
            ["--from", reward_run, "--prompts", prompts],
            ["is a reward model", "policy run", "--reward"],
        ),
        "policy as reward model": (
            ["--from", policy, "--prompts", prompts, "--reward", policy],
            ["is a policy run (no reward head)", "lmforge reward train", "--reward checker"],
        ),
        "checker without answers": (
            ["--from", policy, "--prompts", no_answer],
            [f"{no_answer}:1", "no answer field"],
        ),
        "empty prompt file": (["--from", policy, "--prompts", empty], ["empty"]),
        "no prompts": (
            ["--from", policy, "--prompts", blank],
            [f"{blank}: no prompts found"],
        ),
        "bad min reward": (
            ["--from", policy, "--prompts", prompts, "--min-reward", "high"],
            ["min_reward", "a number, none or auto"],
        ),
        "prompts longer than the row": (
            ["--from", policy, "--prompts", prompts, "--seq-len", "6"],
            ["no prompt leaves room for an answer", "--seq-len"],
        ),
        "no such reward run": (
            ["--from", policy, "--prompts", prompts, "--reward", tmp / "nope"],
            ["--reward", "no such run folder", "checker"],
        ),
        "nothing reaches min reward": (
            ["--from", policy, "--prompts", prompts, "--min-reward", "2"],
            ["no prompt's best sample reached --min-reward 2", "lower --min-reward"],
        ),
        "skip solved without a min reward": (
            ["--from", policy, "--prompts", prompts, "--skip-solved", "--min-reward", "none"],
            ["skip_solved", "needs a --min-reward"],
        ),
        "skip solved with a reward model's auto floor": (
            ["--from", policy, "--prompts", prompts, "--skip-solved", "--reward", reward_run],
            ["skip_solved", "means none; give a number"],
        ),
        "replay without answers": (
            ["--from", policy, "--prompts", prompts, "--replay", no_answer],
            [f"{no_answer}:1", "matches no instruction"],
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "reward model as policy",
        "policy as reward model",
        "checker without answers",
        "empty prompt file",
        "no prompts",
        "bad min reward",
        "prompts longer than the row",
        "no such reward run",
        "nothing reaches min reward",
        "skip solved without a min reward",
        "skip solved with a reward model's auto floor",
        "replay without answers",
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(
    case, policy, prompts, reward_run, tmp_path, capsys
):
    args, needles = _bad_cases(tmp_path, policy, prompts, reward_run)[case]
    out = tmp_path / "out"
    r = cli(capsys, "rs", "--out", out, *RS, "--iterations", "1", "--n", "2", *args)
    assert_clean_error(r, *needles)
    assert not out.exists()


def test_default_steps_are_one_packed_pass_over_the_conversations():
    """Prompt tokens plus each answer (the reference's tokens + 2, else max_new_tokens / 2)."""
    from lmforge.config import build_config
    from lmforge.stages.rs import default_steps
    from lmforge.stages.rs_config import RSConfig
    from lmforge.tokenizers.chat import Conversation, Message

    class Tok:  # one token per character
        def encode(self, text):
            return list(text)

    convs = [Conversation([Message("user", "q")], {"reference": "x" * 8}),
             Conversation([Message("user", "q")], {})] * 50  # fmt: skip
    ids = [[0] * 20] * 100
    cfg = build_config(RSConfig, overrides={"prompts": ["p"], "out": "x", "batch_size": 4,
                                            "max_new_tokens": 30})  # fmt: skip
    # 100 prompts × 20 + 50 × (8 + 2) + 50 × 15 = 3,250 tokens -> 51 rows of 64 -> 13 steps.
    assert default_steps(cfg, Tok(), convs, ids, 63, 1) == 13
    assert default_steps(cfg, Tok(), convs, ids, 63, 2) == 7
