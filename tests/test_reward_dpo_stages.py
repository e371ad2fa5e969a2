"""`lmforge reward train`, `eval reward`, `reward score` and `lmforge dpo`: the stages end to end.

The parent is the tiny LLaMA of `tiny_run` (its tokenizer has the role tokens);
pairs are written here: the chosen answer names the right place, the rejected
one a wrong place or a refusal, with LLaMA-2 ratings. Stage runs go through the
CLI in this process; the SIGKILL tests start subprocesses (tests/_killable.py).
"""
# ruff: noqa: F811 (pytest fixtures imported from test_pretrain_helpers are redefined as arguments)

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import assert_clean_error
from sft_helpers import NAMES, PLACE_OF, files, train_losses, write_jsonl
from test_pretrain_helpers import (  # noqa: F401 (fixtures)
    assert_same_weights,
    cli,
    make_corpus,
    tiny_run,
    tiny_shards,
)

from lmforge.models.heads import HeadModel, head_kind
from lmforge.runs import load_run
from lmforge.runs.checkpoint import latest_checkpoint

KILLABLE = Path(__file__).parent / "_killable.py"
KILLED = -signal.SIGKILL
COMMON = [
    "--batch-size", "4", "--seq-len", "48", "--warmup", "2", "--lr", "3e-3", "--threads", "1",
    "--dtype", "fp32", "--log-every", "1", "--quiet",
]  # fmt: skip
STEPS = ["--max-steps", "6", "--save-every", "3", "--eval-every", "3"]
RATINGS = ("significantly_better", "better", "slightly_better", "negligibly_better")


def pair_records(n: int = 24, seed: int = 0) -> list[dict]:
    """Where-did-X-go pairs: right place vs a wrong place or a refusal, rated."""
    rng = random.Random(seed)
    out = []
    places = sorted(set(PLACE_OF.values()))
    for i in range(n):
        name = rng.choice(NAMES)
        right = PLACE_OF[name]
        wrong = rng.choice([p for p in places if p != right])
        rejected = f"{name} went to {wrong}." if i % 3 else "I don't know."
        out.append({
            "prompt": f"Where did {name} go?", "chosen": f"{name} went to {right}.",
            "rejected": rejected, "rating": RATINGS[i % 4], "task": "places",
        })  # fmt: skip
    return out


@pytest.fixture(scope="module")
def pairs(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("pairs") / "pairs.jsonl", pair_records())


@pytest.fixture(scope="module")
def val_pairs(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("val") / "val.jsonl", pair_records(8, seed=1))


@pytest.fixture(scope="module")
def rm_run(tiny_run, pairs, val_pairs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rm") / "run"
    r = subprocess.run(
        [sys.executable, "-m", "lmforge", "reward", "train", "--from", str(tiny_run), "--data",
         str(pairs), "--val-data", str(val_pairs), "--out", str(out), *COMMON, *STEPS],
        capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def dpo_run(tiny_run, pairs, val_pairs, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dpo") / "run"
    r = proc("dpo", "--from", tiny_run, "--data", pairs, "--val-data", val_pairs, "--out", out,
             *COMMON, *STEPS)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


def proc(*args, timeout: float = 180, **kill) -> subprocess.CompletedProcess:
    """`lmforge ARGS` in a subprocess, through tests/_killable.py when a kill is asked."""
    cmd = [sys.executable, "-m", "lmforge"]
    if kill:
        cmd = [sys.executable, str(KILLABLE)]
        for k, v in kill.items():
            cmd += ["--" + k.replace("_", "-"), str(v)]
        cmd.append("--")
    return subprocess.run([*cmd, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip


def metrics(run: Path) -> list[dict]:
    return [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if x]


# --- reward model ----------------------------------------------------------------------


@pytest.mark.parametrize("verb", [("reward", "train"), ("dpo",)], ids=["reward", "dpo"])
def test_a_row_per_pair_trains_like_a_row_per_answer(verb, tiny_run, pairs, val_pairs, tmp_path,
                                                     capsys):  # fmt: skip
    """--share-prompt (the default: the prompt once per pair) and --no-share-prompt give
    the same run: the same losses, accuracies and validation numbers step by step (to
    float noise, which AdamW's first steps amplify on weights whose gradient is ~0)."""
    runs = []
    for flag in ("--share-prompt", "--no-share-prompt"):
        out = tmp_path / flag.strip("-")
        r = cli(capsys, *verb, "--from", tiny_run, "--data", pairs, "--val-data", val_pairs,
                "--out", out, *COMMON, *STEPS, "--save-every", "0", flag)  # fmt: skip
        assert r.returncode == 0, r.stderr
        runs.append(metrics(out))
    shared, two = runs
    assert len(shared) == len(two)
    assert shared[0]["step"] == 1  # its loss is the initial weights': equal to float noise
    assert shared[0]["loss"] == pytest.approx(two[0]["loss"], rel=1e-6)
    for a, b in zip(shared, two):
        assert a.keys() == b.keys()
        for k in a:
            if k not in ("elapsed_s", "tok_per_s"):
                assert a[k] == pytest.approx(b[k], rel=1e-2, abs=1e-3), (a["step"], k)


def test_reward_run_is_a_head_model_with_its_metrics(rm_run, tiny_run):
    run = load_run(rm_run)
    assert head_kind(run.model) == "scalar" and run.stage == "reward"
    ck = run.checkpoint
    assert ck.step == 6 and ck.state["parent"]["run"] == str(tiny_run.resolve())
    assert ck.state["tokens_seen"] == 6 * 4  # pairs, not tokens
    recs = metrics(rm_run)
    assert any("val_acc" in r for r in recs) and any("train_acc" in r for r in recs)
    report = (rm_run / "report.md").read_text()
    assert "| pairs given | 24 |" in report and "validation pairwise accuracy" in report


def test_reward_model_learns_to_rank_the_training_pairs(tiny_run, pairs, tmp_path, capsys):
    from lmforge.data.preference_batches import PreferenceBatches, render_pairs
    from lmforge.data.preferences import read_preferences
    from lmforge.train.reward import pair_rewards

    out = tmp_path / "rm"
    r = cli(capsys, "reward", "train", "--from", tiny_run, "--data", pairs, "--out", out,
            *COMMON, "--max-steps", "40", "--save-every", "0", "--val-fraction", "0")  # fmt: skip
    assert r.returncode == 0, r.stderr
    run = load_run(out)
    got, _ = render_pairs(run.tokenizer, read_preferences([str(pairs)]).pairs, 48)
    with torch.no_grad():
        right = n = 0
        for b in PreferenceBatches(got, 8, pad_id=run.tokenizer.pad_id).eval_batches():
            c, rj = pair_rewards(run.model, b)
            right, n = right + int((c > rj).sum()), n + len(c)
    assert right / n >= 0.9, right / n


def test_likelihood_reward_model_trains_scores_and_is_a_reward_model(tiny_run, pairs, val_pairs,
                                                                     tmp_path, capsys):  # fmt: skip
    """`reward train --head likelihood`: the score is w · the answer's mean log-probability;
    it starts where the parent's likelihood ranks (w = --beta), training raises the training
    pairs' accuracy, and the run is a reward model everywhere (eval, score; not a policy)."""
    from lmforge.data.preference_batches import PreferenceBatches, render_pairs
    from lmforge.data.preferences import read_preferences
    from lmforge.train.logprobs import sequence_logps
    from lmforge.train.reward import pair_rewards

    out = tmp_path / "lik"
    r = cli(capsys, "reward", "train", "--from", tiny_run, "--data", pairs, "--out", out,
            "--head", "likelihood", "--beta", "3", *COMMON, "--max-steps", "30", "--lr", "3e-3",
            "--save-every", "0", "--val-fraction", "0")  # fmt: skip
    assert r.returncode == 0, r.stderr
    run, parent = load_run(out), load_run(tiny_run)
    assert head_kind(run.model) == "likelihood" and run.stage == "reward"
    got, _ = render_pairs(run.tokenizer, read_preferences([str(pairs)]).pairs, 48)
    (batch,) = PreferenceBatches(got, len(got), pad_id=run.tokenizer.pad_id).eval_batches()
    with torch.no_grad():
        mask = batch["response_mask"]
        start = sequence_logps(parent.model, batch["ids"], mask) / mask[:, 1:].sum(1)  # (2B,)
        fresh = HeadModel(parent.model, "likelihood", scale=3.0)
        torch.testing.assert_close(torch.cat(pair_rewards(fresh, batch)), 3.0 * start,
                                   atol=1e-4, rtol=0)  # fmt: skip
        c, rj = pair_rewards(run.model, batch)
        B = len(c)
    before = (start[:B] > start[B:]).float().mean().item()
    after = (c > rj).float().mean().item()
    assert after >= 0.9 and after > before, (before, after)
    ev = cli(capsys, "eval", "reward", "--run", out, "--data", val_pairs, "--out", tmp_path / "ev")
    assert ev.returncode == 0, ev.stderr
    assert json.loads((tmp_path / "ev" / "results.json").read_text())["pairs"] == 8
    sc = cli(capsys, "reward", "score", "--run", out, "--data", val_pairs,
             "--out", tmp_path / "s.jsonl")  # fmt: skip
    assert sc.returncode == 0, sc.stderr
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 8
    r = cli(capsys, "dpo", "--from", out, "--data", pairs, "--out", tmp_path / "d", *COMMON)
    assert_clean_error(r, "is a reward model", "policy run")
    r = cli(capsys, "eval", "reward", "--run", out, "--likelihood", "--data", val_pairs,
            "--out", tmp_path / "e")  # fmt: skip
    assert_clean_error(r, "likelihood head", "policy run")
    r = cli(capsys, "reward", "train", "--from", tiny_run, "--data", pairs, "--out",
            tmp_path / "f", "--head", "likelihood", "--lm-coef", "0.1", *COMMON)  # fmt: skip
    assert_clean_error(r, "lm_coef")
    assert not any((tmp_path / n).exists() for n in "def")


def test_eval_reward_writes_accuracy_by_bucket_and_calibration(rm_run, val_pairs, tmp_path, capsys):
    out = tmp_path / "ev"
    r = cli(capsys, "eval", "reward", "--run", rm_run, "--data", val_pairs, "--out", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "results.json").read_text())
    assert doc["kind"] == "lmforge eval reward" and doc["pairs"] == 8
    assert list(doc["by"]["bucket"]) == list(RATINGS)  # LLaMA-2's order, largest gap first
    assert sum(b["n"] for b in doc["by"]["bucket"].values()) == 8
    assert sum(b["n"] for b in doc["calibration"]["bins"]) == 8
    assert 0 <= doc["calibration"]["ece"] <= 1
    for name in ("scores.jsonl", "results.md", "rewards.png", "calibration.png"):
        assert (out / name).is_file(), name
    scores = [json.loads(x) for x in (out / "scores.jsonl").read_text().splitlines()]
    right = sum(s["reward_chosen"] > s["reward_rejected"] for s in scores)
    assert doc["accuracy"]["correct"] == right
    # Rerunning needs --force; with it the folder is replaced.
    r = cli(capsys, "eval", "reward", "--run", rm_run, "--data", val_pairs, "--out", out)
    assert r.returncode == 2 and "--force" in r.stderr


def test_reward_score_pairs_and_responses(rm_run, val_pairs, tmp_path, capsys):
    from lmforge.eval.reward_scores import score_responses

    out = tmp_path / "scores.jsonl"
    r = cli(capsys, "reward", "score", "--run", rm_run, "--data", val_pairs, "--out", out)
    assert r.returncode == 0, r.stderr
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 8 and {"reward_chosen", "reward_rejected", "task"} <= set(rows[0])
    responses = write_jsonl(tmp_path / "resp.jsonl", [
        {"messages": [{"role": "user", "content": "Where did Anna go?"},
                      {"role": "assistant", "content": "Anna went to the park."}]},
        {"prompt": "Where did Anna go?", "response": "I don't know."},
    ])  # fmt: skip
    r = cli(capsys, "reward", "score", "--run", rm_run, "--data", responses)
    assert r.returncode == 0, r.stderr
    got = [json.loads(x)["reward"] for x in r.stdout.splitlines()]
    run = load_run(rm_run)
    prompt = [{"role": "user", "content": "Where did Anna go?"}]
    from lmforge.tokenizers.chat import Conversation

    msgs = Conversation.from_dicts(prompt).messages
    want = score_responses(run.model, run.tokenizer,
                           [(msgs, "Anna went to the park."), (msgs, "I don't know.")])  # fmt: skip
    assert got == pytest.approx(want, abs=1e-5)


def test_eval_reward_likelihood_ranks_by_the_policys_log_probabilities(
    tiny_run, rm_run, val_pairs, tmp_path, capsys
):
    """--likelihood: each answer scores Σ log p(answer tokens, <|end|> included | before),
    equal to a full log_softmax of the policy; a reward model is refused for it."""
    from lmforge.data.preference_batches import render_response
    from lmforge.tokenizers.chat import Conversation

    out = tmp_path / "ll"
    r = cli(capsys, "eval", "reward", "--run", tiny_run, "--likelihood", "--data", val_pairs,
            "--out", out)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "likelihood" in (out / "results.md").read_text().splitlines()[0]
    scores = [json.loads(x) for x in (out / "scores.jsonl").read_text().splitlines()]
    run = load_run(tiny_run)
    records = [json.loads(x) for x in Path(val_pairs).read_text().splitlines()]
    assert len(scores) == len(records) == 8
    for rec, got in zip(records, scores):
        prompt = Conversation.from_dicts([{"role": "user", "content": rec["prompt"]}]).messages
        for side in ("chosen", "rejected"):
            ids, start = render_response(run.tokenizer, prompt, rec[side])
            with torch.no_grad():
                logits, _ = run.model(torch.tensor([ids]))
            logp = torch.log_softmax(logits[0, :-1].float(), -1)  # (T-1, V): predicts ids[1:]
            want = logp[torch.arange(start - 1, len(ids) - 1), ids[start:]].sum().item()
            assert got[f"reward_{side}"] == pytest.approx(want, abs=1e-4)
    r = cli(capsys, "eval", "reward", "--run", rm_run, "--likelihood", "--data", val_pairs,
            "--out", tmp_path / "no")  # fmt: skip
    assert_clean_error(r, "is a reward model", "--likelihood")
    assert not (tmp_path / "no").exists()


def test_reward_scores_do_not_depend_on_the_batch(rm_run):
    from lmforge.eval.reward_scores import score_responses
    from lmforge.tokenizers.chat import Message

    run = load_run(rm_run)
    items = [([Message("user", f"Where did {n} go?")], f"{n} went to {PLACE_OF[n]}.")
             for n in NAMES]  # fmt: skip
    together = score_responses(run.model, run.tokenizer, items, batch_size=len(items))
    alone = [score_responses(run.model, run.tokenizer, [it])[0] for it in items]
    assert together == pytest.approx(alone, abs=1e-5)


@pytest.mark.parametrize("verb", ["reward", "dpo"])
def test_killed_then_resumed_is_bitwise_equal(verb, rm_run, dpo_run, tiny_run, pairs, val_pairs,
                                              tmp_path):  # fmt: skip
    ref = rm_run if verb == "reward" else dpo_run
    head = ["reward", "train"] if verb == "reward" else ["dpo"]
    out = tmp_path / "run"
    r = proc(*head, "--from", tiny_run, "--data", pairs, "--val-data", val_pairs, "--out", out,
             *COMMON, *STEPS, after_step=4)  # fmt: skip
    assert r.returncode == KILLED, r.stderr
    assert latest_checkpoint(out).name == "step_3"
    r = proc(*head, "--out", out, "--resume", "--quiet")
    assert r.returncode == 0, r.stderr
    assert_same_weights(out / "checkpoints" / "step_6", ref / "checkpoints" / "step_6")
    assert train_losses(out) == train_losses(ref)


# --- DPO -------------------------------------------------------------------------------


def test_dpo_run_keeps_its_reference_and_logs_implicit_rewards(dpo_run):
    from safetensors.torch import load_file

    tables = load_file(str(dpo_run / "reference_logps.safetensors"))
    assert tables["train"].shape == (24, 2) and tables["val"].shape == (8, 2)
    assert bool((tables["train"] < 0).all())  # log-probabilities of real answers
    run = load_run(dpo_run)
    assert head_kind(run.model) is None and run.stage == "dpo"
    keys = set().union(*(r.keys() for r in metrics(dpo_run)))
    assert {"train_acc", "train_reward_gap", "val_acc", "val_loss"} <= keys
    first = next(r for r in metrics(dpo_run) if "loss" in r)
    # Step 1 starts at the reference: every implicit reward is 0, the loss log 2.
    assert first["loss"] == pytest.approx(0.693147, abs=1e-4)


def test_dpo_reference_model_trains_like_the_precomputed_table(dpo_run, tiny_run, pairs, val_pairs,
                                                               tmp_path, capsys):  # fmt: skip
    out = tmp_path / "run"
    r = cli(capsys, "dpo", "--from", tiny_run, "--data", pairs, "--val-data", val_pairs, "--out",
            out, *COMMON, *STEPS, "--reference", "model")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert not (out / "reference_logps.safetensors").exists()
    got, want = train_losses(out), train_losses(dpo_run)
    assert [s for s, _ in got] == [s for s, _ in want]
    assert [x for _, x in got] == pytest.approx([x for _, x in want], rel=1e-4, abs=1e-5)


def test_dpo_raises_the_implicit_reward_gap(tiny_run, pairs, tmp_path, capsys):
    out = tmp_path / "run"
    r = cli(capsys, "dpo", "--from", tiny_run, "--data", pairs, "--out", out, *COMMON,
            "--max-steps", "30", "--save-every", "0", "--val-fraction", "0", "--beta", "0.5")  # fmt: skip
    assert r.returncode == 0, r.stderr
    recs = [r for r in metrics(out) if "train_acc" in r]
    assert recs[0]["train_reward_gap"] == pytest.approx(0.0, abs=1e-5)
    assert sum(r["train_acc"] for r in recs[-5:]) / 5 >= 0.9
    assert recs[-1]["loss"] < 0.3


@pytest.mark.parametrize("loss_type", ["ipo"])
def test_dpo_ipo_and_label_smoothing_run(loss_type, tiny_run, pairs, tmp_path, capsys):
    out = tmp_path / "run"
    r = cli(capsys, "dpo", "--from", tiny_run, "--data", pairs, "--out", out, *COMMON,
            "--max-steps", "2", "--loss-type", loss_type, "--label-smoothing", "0.1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (out / "checkpoints" / "step_2").is_dir()


# --- bad input -------------------------------------------------------------------------


BAD = {
    "missing rejected": ({"prompt": "Where did Anna go?", "chosen": "x"}, "rejected"),
    "non-numeric margin": (
        {"prompt": "p", "chosen": "a", "rejected": "b", "margin": "big"}, "margin"),
    "rating not in the table": (
        {"prompt": "p", "chosen": "a", "rejected": "b", "rating": "much_better"}, "rating"),
}  # fmt: skip


@pytest.mark.parametrize("verb", ["reward", "dpo"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_pairs_are_one_line_and_write_nothing(verb, case, tiny_run, tmp_path, capsys):
    bad, field = BAD[case]
    data = write_jsonl(tmp_path / "d" / "pairs.jsonl", [*pair_records(3), bad])
    head = ["reward", "train"] if verb == "reward" else ["dpo"]
    out = tmp_path / "out"
    r = cli(capsys, *head, "--from", tiny_run, "--data", data, "--out", out, *COMMON,
            "--max-steps", "1")  # fmt: skip
    assert_clean_error(r, "pairs.jsonl:4", field)
    assert not out.exists()


def test_identical_pairs_are_counted_and_left_out(tiny_run, tmp_path, capsys):
    same = {"prompt": "Where did Anna go?", "chosen": "Anna went home.",
            "rejected": "Anna went home."}  # fmt: skip
    data = write_jsonl(tmp_path / "d" / "pairs.jsonl", [*pair_records(8), same, same])
    out = tmp_path / "out"
    r = cli(capsys, "reward", "train", "--from", tiny_run, "--data", data, "--out", out,
            "--max-steps", "1", *[a for a in COMMON if a != "--quiet"])  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "2 preference pairs have chosen == rejected and were left out" in r.stderr
    assert "2 identical left out" in (out / "report.md").read_text()


def test_roles_are_refused_saying_which_is_which(rm_run, dpo_run, tiny_run, pairs, val_pairs,
                                                 tmp_path, capsys):  # fmt: skip
    before = files(rm_run)
    r = cli(capsys, "dpo", "--from", rm_run, "--data", pairs, "--out", tmp_path / "a", *COMMON)
    assert_clean_error(r, "is a reward model", "policy run")
    r = cli(capsys, "reward", "train", "--from", rm_run, "--data", pairs, "--out", tmp_path / "b",
            *COMMON)  # fmt: skip
    assert_clean_error(r, "already has a scalar head")
    r = cli(capsys, "eval", "reward", "--run", dpo_run, "--data", val_pairs, "--out",
            tmp_path / "c")  # fmt: skip
    assert_clean_error(r, "is a policy run", "reward train")
    r = cli(capsys, "reward", "score", "--run", tiny_run, "--data", val_pairs)
    assert_clean_error(r, "is a policy run")
    assert files(rm_run) == before
    assert not any((tmp_path / n).exists() for n in "abc")


@pytest.mark.slow
@pytest.mark.parametrize("verb", ["reward", "dpo"])
def test_two_processes_train_like_one(verb, rm_run, dpo_run, tiny_run, pairs, val_pairs, tmp_path):
    """torchrun (gloo): 2 processes x 2 pairs follow the curve of 1 process x 4 pairs."""
    import os

    ref = rm_run if verb == "reward" else dpo_run
    head = ["reward", "train"] if verb == "reward" else ["dpo"]
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lmforge", *head, "--from", str(tiny_run), "--data", str(pairs), "--val-data",
           str(val_pairs), "--out", str(out), *COMMON, *STEPS, "--batch-size", "2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    two, one = train_losses(out), train_losses(ref)
    assert [s for s, _ in two] == [s for s, _ in one] == list(range(1, 7))
    assert [x for _, x in two] == pytest.approx([x for _, x in one], rel=1e-4, abs=1e-6)
    val = [json.loads(x)["val_acc"] for run in (out, ref)
           for x in (run / "metrics.jsonl").read_text().splitlines() if "val_acc" in x]  # fmt: skip
    assert len(val) == 4 and val[:2] == pytest.approx(val[2:])


def test_calibration_bins_the_confidence_in_the_order_given():
    """Confidence is max(p, 1 - p): a pair ranked wrong with p = 0.2 is 80% sure, wrongly."""
    import math

    from lmforge.eval.reward import PairScore, calibration

    def pair(d: float) -> PairScore:  # r_c - r_r = d
        return PairScore("x", d, 0.0, "b", {})

    logit = lambda p: math.log(p / (1 - p))  # noqa: E731
    scores = [pair(logit(0.82)), pair(logit(0.84)), pair(-logit(0.83)), pair(logit(0.55))]
    cal = calibration(scores, bins=5)
    by = {tuple(round(x, 2) for x in b["bin"]): b for b in cal["bins"]}
    high = by[(0.8, 0.9)]
    assert high["n"] == 3 and high["share_right"] == pytest.approx(2 / 3)
    assert high["confidence"] == pytest.approx(0.83, abs=1e-6)
    assert by[(0.5, 0.6)]["n"] == 1 and by[(0.5, 0.6)]["share_right"] == 1.0
    want = 3 / 4 * abs(0.83 - 2 / 3) + 1 / 4 * abs(0.55 - 1.0)
    assert cal["ece"] == pytest.approx(want, abs=1e-6)
