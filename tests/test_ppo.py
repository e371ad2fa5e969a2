"""`lmforge ppo` / `lmforge grpo`: objectives on a real model, the stage, exact resume, bad input.

The policy is test_rs's: the tiny LLaMA fine-tuned for 40 SFT steps on "Where did NAME
go?" conversations, right about a third of the time at temperature 0.7, so the world's
checker gives a mix of rewards. Stage runs go through the CLI in this process; the
SIGKILL test runs `tests/_killable.py` in a subprocess.
"""
# ruff: noqa: F811 (pytest fixtures imported from other test modules are redefined as arguments)

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import assert_clean_error, run_lmforge_inprocess
from sft_helpers import write_jsonl
from test_pretrain_helpers import assert_same_weights, cli, tiny_run, tiny_shards  # noqa: F401
from test_rs import place_prompts, policy, prompts, reward_run  # noqa: F401 (fixtures)

from lmforge.runs import load_run
from lmforge.runs.checkpoint import latest_checkpoint

PPO = [
    "--episodes", "8", "--ppo-epochs", "2", "--minibatches", "2", "--iterations", "2",
    "--max-new-tokens", "12", "--temperature", "0.7", "--lr", "1e-4", "--min-lr", "1e-4",
    "--threads", "1", "--dtype", "fp32", "--save-every", "2", "--quiet",
]  # fmt: skip
GRPO = [*PPO, "--n", "4"]
TIMING = ("rollout_s", "update_s", "generate_s", "score_s", "wall_s", "rollout_tokens_per_s",
          "update_tokens_per_s")  # fmt: skip
REPO = Path(__file__).resolve().parents[1]


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x]


def untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


@pytest.fixture(scope="module")
def ppo_ref(policy, prompts, tmp_path_factory) -> Path:
    """An uninterrupted PPO run: 2 iterations × 2 epochs × 2 minibatches (steps 1..8)."""
    out = tmp_path_factory.mktemp("ppo_ref") / "run"
    r = run_lmforge_inprocess("ppo", "--from", policy, "--prompts", prompts, "--out", out, *PPO)
    assert r.returncode == 0, r.stderr
    return out


# --- the objectives on a real model ---------------------------------------------------


def _buffer(run: Path, k: int = 1) -> dict[str, torch.Tensor]:
    return torch.load(run / "ppo" / "rollouts" / f"iter-{k}.rank-0.pt", weights_only=True)


def test_logps_of_the_training_forward_equal_a_full_softmax_with_temperature(policy):
    from lmforge.models.heads import WithValueHead
    from lmforge.train.ppo import policy_forward

    model = load_run(policy).model
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(9, 200, (3, 10), generator=g)
    mask = torch.zeros(3, 10, dtype=torch.bool)
    mask[0, 4:9], mask[1, 2:10], mask[2, 6:7] = True, True, True
    logits, _ = model(ids)
    full = torch.log_softmax(logits.float() / 0.7, dim=-1)  # (B, T, V)
    want = torch.zeros(3, 10)
    want[:, 1:] = full[:, :-1].gather(2, ids[:, 1:, None]).squeeze(2)
    want = want * mask
    logp, ent, values = policy_forward(model, ids, mask, value_head=False, temperature=0.7)
    assert values is None
    assert torch.allclose(logp, want, atol=1e-5)
    p = full[:, :-1].exp()
    want_ent = torch.zeros(3, 10)
    want_ent[:, 1:] = -(p * full[:, :-1]).sum(-1)
    assert torch.allclose(ent, want_ent * mask, atol=1e-4)
    # A value head on the same trunk: the same log-probs, and values read one position back.
    torch.manual_seed(0)
    critic = WithValueHead(model)
    logp2, _, v = policy_forward(critic, ids, mask, value_head=True, temperature=0.7)
    assert torch.allclose(logp2, logp, atol=1e-6)
    raw = critic(ids)  # (B, T)
    assert torch.allclose(v[:, 1:], (raw[:, :-1] * mask[:, 1:]).float(), atol=1e-6)


@pytest.mark.parametrize("kind", ["ppo", "grpo"])
def test_padding_and_prompt_positions_change_nothing(kind, policy):
    """Garbage in the padded tail (ids and every buffer field) and in the prompt positions of
    the buffer leaves the loss and every gradient as they were."""
    from lmforge.models.heads import WithValueHead
    from lmforge.train.ppo import GRPOObjective, PPOObjective

    base = load_run(policy).model
    torch.manual_seed(0)
    model = WithValueHead(base) if kind == "ppo" else base
    obj = PPOObjective(entropy_coef=0.01) if kind == "ppo" else GRPOObjective(beta=0.1)
    g = torch.Generator().manual_seed(1)
    B, T = 3, 12
    ids = torch.randint(9, 200, (B, T), generator=g)
    mask = torch.zeros(B, T, dtype=torch.bool)
    mask[0, 3:8], mask[1, 5:12], mask[2, 2:4] = True, True, True
    fields = ("old_logp", "advantages", "old_values", "returns", "ref_logp")
    batch = {"ids": ids, "mask": mask, **{f: torch.randn(B, T, generator=g) * mask for f in fields}}
    batch["old_logp"] = batch["old_logp"] * 0.1 - 2.0 * mask

    def loss_and_grads(b):
        model.zero_grad()
        out = obj.compute_loss(model, b)
        out.loss_sum.backward()
        return out.loss_sum.detach(), [
            p.grad.clone() for p in model.parameters() if p.grad is not None
        ]

    loss, grads = loss_and_grads(batch)
    noisy = {k: v.clone() for k, v in batch.items()}
    tail = torch.zeros(B, T, dtype=torch.bool)
    tail[0, 8:], tail[2, 4:] = True, True  # padding after each row's last action
    noisy["ids"] = torch.where(tail, torch.randint(9, 200, (B, T), generator=g), ids)
    for f in fields:
        noisy[f] = torch.where(mask, noisy[f], torch.full((B, T), 1e6))
    loss2, grads2 = loss_and_grads(noisy)
    assert torch.equal(loss, loss2)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(grads, grads2, strict=True))
    assert not math.isnan(float(loss))


def test_the_first_update_step_sees_ratio_one_and_the_losses_are_the_formulas(ppo_ref):
    """The buffer's old log-probs are recomputed by the same forward the loss uses: at the
    first minibatch of an iteration the ratio is exactly 1 and the clip fraction 0."""
    rec = read_jsonl(ppo_ref / "metrics.jsonl")
    first = next(r for r in rec if r.get("step") == 1)
    assert first["train_ratio"] == pytest.approx(1.0, abs=1e-6)
    assert first["train_clipfrac"] == 0.0
    assert first["train_approx_kl"] < 1e-10
    buf = _buffer(ppo_ref)
    mask = buf["mask"]
    # Advantages are whitened over the actions; returns = advantages before whitening + values.
    adv = buf["advantages"][mask]
    assert adv.mean().item() == pytest.approx(0.0, abs=1e-5)
    assert adv.std().item() == pytest.approx(1.0, abs=1e-3)
    assert float(buf["old_logp"][~mask].abs().sum()) == 0.0


# --- the stage ------------------------------------------------------------------------


def test_the_run_folder_report_and_iteration_table(ppo_ref):
    rows = read_jsonl(ppo_ref / "ppo" / "iterations.jsonl")
    assert [r["iteration"] for r in rows] == [1, 2]
    for r in rows:
        for key in ("mean_score", "kl", "beta", "update_entropy", "update_clipfrac",
                    "update_vf_loss", "explained_variance", "mean_length",
                    "rollout_tokens_per_s", "update_tokens_per_s", "wall_s"):  # fmt: skip
            assert key in r, key
        assert 0.0 <= r["mean_score"] <= 1.0 and r["episodes"] == 8
    assert rows[0]["kl"] == pytest.approx(0.0, abs=1e-5)  # the policy is the reference at first
    assert rows[1]["wall_s"] > rows[0]["wall_s"]
    samples = read_jsonl(ppo_ref / "ppo" / "samples" / "iter-1.jsonl")
    assert len(samples) == 8 and {"prompt", "text", "score", "finish_reason"} <= set(samples[0])
    report = (ppo_ref / "report.md").read_text()
    assert "# PPO report" in report and "Samples at the end" in report
    assert (ppo_ref / "plots" / "reward_kl.png").is_file()
    assert (ppo_ref / "plots" / "reward_time.png").is_file()
    assert (ppo_ref / "reference.safetensors").is_file()
    # A PPO run opens as its policy: the critic is for training only.
    run = load_run(ppo_ref, need="decoder")
    from lmforge.models.heads import head_kind

    assert head_kind(run.model) is None and run.stage == "ppo"
    r = run_lmforge_inprocess(
        "sample", "--run", ppo_ref, "--prompt", "Where", "--max-new-tokens", "3"
    )
    assert r.returncode == 0, r.stderr


def test_the_reference_is_frozen_and_the_policy_moves(ppo_ref, policy):
    from lmforge.models import load_model

    ref = load_model(ppo_ref / "reference.safetensors")
    parent = load_run(policy).model
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(),
                                                   parent.state_dict().values(), strict=True))  # fmt: skip
    moved = load_run(ppo_ref).model
    assert any(not torch.equal(a, b) for a, b in zip(moved.state_dict().values(),
                                                      parent.state_dict().values(), strict=True))  # fmt: skip


def test_grpo_runs_groups_without_a_critic(policy, prompts, tmp_path):
    out = tmp_path / "grpo"
    r = run_lmforge_inprocess("grpo", "--from", policy, "--prompts", prompts, "--out", out, *GRPO)
    assert r.returncode == 0, r.stderr
    buf = _buffer(out)
    assert "old_values" not in buf and "ref_logp" in buf
    # One advantage per answer, the same at each of its actions; zero-sum within a group.
    adv = buf["advantages"]
    per_answer = torch.stack([adv[i][buf["mask"][i]][0] if buf["mask"][i].any() else adv.new_zeros(())
                              for i in range(adv.size(0))])  # fmt: skip
    assert per_answer.view(2, 4).sum(1).abs().max().item() < 1e-4
    samples = read_jsonl(out / "ppo" / "samples" / "iter-1.jsonl")
    assert samples[0]["prompt"] == samples[3]["prompt"] != samples[4]["prompt"]
    assert "# GRPO report" in (out / "report.md").read_text()
    head = json.loads((out / "ppo" / "iterations.jsonl").read_text().splitlines()[0])
    assert "update_kl" in head and "explained_variance" not in head


@pytest.mark.parametrize(
    "kill_after",
    [pytest.param(3, marks=pytest.mark.slow, id="mid-iteration-1"),
     pytest.param(5, id="mid-iteration-2")],
)  # fmt: skip
def test_sigkill_then_resume_is_bitwise_equal(kill_after, ppo_ref, policy, prompts, tmp_path):
    """SIGKILL before step kill_after + 1 (the latest checkpoint is the step before, even);
    the resume re-reads that iteration's rollout buffer and ends bitwise equal."""
    out = tmp_path / "run"
    args = ["ppo", "--from", policy, "--prompts", prompts, "--out", out, *PPO]
    cmd = [sys.executable, str(REPO / "tests" / "_killable.py"), "--after-step", str(kill_after),
           "--", *map(str, args)]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    assert latest_checkpoint(out).name == f"step_{kill_after - 1}"
    r = run_lmforge_inprocess("ppo", "--out", out, "--resume", "--quiet")
    assert r.returncode == 0, r.stderr
    assert_same_weights(out / "checkpoints" / "step_8", ppo_ref / "checkpoints" / "step_8")
    assert untimed(read_jsonl(out / "ppo" / "iterations.jsonl")) == untimed(
        read_jsonl(ppo_ref / "ppo" / "iterations.jsonl")
    )
    for k in (1, 2):
        assert (out / "ppo" / "samples" / f"iter-{k}.jsonl").read_bytes() == (
            ppo_ref / "ppo" / "samples" / f"iter-{k}.jsonl"
        ).read_bytes()


def test_resume_of_a_finished_run_is_complete_and_writes_nothing(ppo_ref, capsys):
    before = {p: p.stat().st_mtime_ns for p in ppo_ref.rglob("*") if p.is_file()}
    r = cli(capsys, "ppo", "--out", ppo_ref, "--resume")
    assert r.returncode == 0, r.stderr
    assert "complete" in r.stdout + r.stderr
    assert {p: p.stat().st_mtime_ns for p in ppo_ref.rglob("*") if p.is_file()} == before
    r = cli(capsys, "grpo", "--out", ppo_ref, "--resume")
    assert_clean_error(r, "is a ppo run", "lmforge ppo --resume")


# --- rewards ---------------------------------------------------------------------------

REWARDS = """
import math

def length(prompt, completion, **fields):
    return len(completion) / 10

def flaky(prompt, completion, **fields):
    if "Anna" in prompt:
        raise ZeroDivisionError("no reward for Anna")
    return 1.0 if completion.strip() == fields["answer"] else 0.0

def nan(prompt, completion, **fields):
    return math.nan
"""


@pytest.fixture(scope="module")
def reward_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("rewards") / "my_rewards.py"
    path.write_text(REWARDS)
    return path


def test_a_python_function_is_a_reward(reward_file, policy, prompts, tmp_path):
    out = tmp_path / "fn"
    r = run_lmforge_inprocess("ppo", "--from", policy, "--prompts", prompts, "--out", out, *PPO,
                              "--iterations", "1", "--reward", f"{reward_file}:length")  # fmt: skip
    assert r.returncode == 0, r.stderr
    samples = read_jsonl(out / "ppo" / "samples" / "iter-1.jsonl")
    assert [s["score"] for s in samples] == pytest.approx([len(s["text"]) / 10 for s in samples])


def test_a_failing_reward_is_skipped_counted_and_stops_after_the_limit(
    reward_file, policy, prompts, tmp_path
):
    out = tmp_path / "flaky"
    common = ["ppo", "--from", policy, "--prompts", prompts, *PPO, "--iterations", "1",
              "--reward", f"{reward_file}:flaky"]  # fmt: skip
    r = run_lmforge_inprocess(*common, "--out", out, "--max-reward-errors", "100")
    assert r.returncode == 0, r.stderr
    rows = read_jsonl(out / "ppo" / "iterations.jsonl")
    anna = sum("Anna" in s["prompt"] for s in read_jsonl(out / "ppo" / "samples" / "iter-1.jsonl"))
    assert rows[0]["skipped"] == anna == rows[0]["reward_errors"] > 0
    assert "ZeroDivisionError: no reward for Anna" in r.stderr + r.stdout
    # Beyond the limit: one line naming the prompt and the error, and no run folder left.
    r = run_lmforge_inprocess(*common, "--out", tmp_path / "stop", "--max-reward-errors", "0")
    assert_clean_error(r, f"{prompts}:", "ZeroDivisionError", "--max-reward-errors 0")
    assert not (tmp_path / "stop").exists()
    r = run_lmforge_inprocess("ppo", "--from", policy, "--prompts", prompts, *PPO, "--out",
                              tmp_path / "nan", "--reward", f"{reward_file}:nan",
                              "--max-reward-errors", "3")  # fmt: skip
    assert_clean_error(r, "returned nan", "8 answers", "--max-reward-errors 3")


def test_a_reward_model_with_another_tokenizer_scores_the_text(policy, prompts, tmp_path):
    """The reward model re-tokenizes each answer's text with its own tokenizer (said once)."""
    from test_pretrain_helpers import make_tokenizer

    from lmforge.models import build_model, save_model
    from lmforge.models.heads import WithScalarHead
    from lmforge.models.registry import model_config_from_dict
    from lmforge.runs import RunLayout
    from lmforge.runs.checkpoint import save_checkpoint

    tok = make_tokenizer(tmp_path / "tok", [f"{n} went to the {p}" for n, p in
                                             zip(["Anna", "Bob"] * 20, ["river", "mill"] * 20)],
                         vocab_size=280)  # fmt: skip
    base = load_run(policy)
    assert tok.hash != base.tokenizer.hash
    cfg = dict(base.model.config.__dict__, vocab_size=tok.vocab_size)
    torch.manual_seed(0)
    rm = WithScalarHead(build_model("llama", model_config_from_dict("llama", cfg)))
    rm_dir = tmp_path / "rm"
    tok.save(RunLayout(rm_dir).tokenizer)
    save_checkpoint(rm_dir, 0, write_weights=lambda p: save_model(rm, p), optimizer_state={},
                    trainer_state={"stage": "reward", "tokenizer_hash": tok.hash})  # fmt: skip
    out = tmp_path / "run"
    r = run_lmforge_inprocess("ppo", "--from", policy, "--prompts", prompts, "--out", out, *PPO,
                              "--iterations", "1", "--reward", rm_dir)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "re-tokenized with the reward model's own tokenizer" in (out / "report.md").read_text()
    from lmforge.data.preferences import read_prompts
    from lmforge.eval.reward_scores import score_responses

    convs = {c.meta["where"]: c for c in read_prompts([str(prompts)])}
    samples = read_jsonl(out / "ppo" / "samples" / "iter-1.jsonl")
    items = [(convs[s["source"]].messages, s["text"]) for s in samples]
    want = score_responses(rm.eval(), tok, items, batch_size=4)
    assert [s["score"] for s in samples] == pytest.approx(want, abs=1e-5)


# --- bad input --------------------------------------------------------------------------


def _bad_cases(tmp: Path, policy: Path, prompts: Path, reward_run: Path):
    blank = tmp / "blank.jsonl"
    blank.write_text("\n\n  \n")
    huge = write_jsonl(tmp / "huge.jsonl", [{"prompt": "word " * 400, "answer": "x"}])
    return {
        "negative beta": (
            ["--from", policy, "--prompts", prompts, "--beta", "-0.1"],
            ["beta", ">= 0"],
        ),
        "zero clip": (["--from", policy, "--prompts", prompts, "--clip", "0"], ["clip", "> 0"]),
        "zero temperature": (
            ["--from", policy, "--prompts", prompts, "--temperature", "0"],
            ["temperature", "> 0"],
        ),  # fmt: skip
        "episodes do not split": (
            ["--from", policy, "--prompts", prompts, "--episodes", "7"],
            ["episodes", "multiple of 2"],
        ),  # fmt: skip
        "no prompts": (["--from", policy, "--prompts", blank], [f"{blank}: no prompts found"]),
        "no prompt fits": (["--from", policy, "--prompts", huge], ["no prompt leaves room"]),
        "reward model as policy": (
            ["--from", reward_run, "--prompts", prompts],
            ["is a reward model", "--reward"],
        ),  # fmt: skip
        "policy as reward": (
            ["--from", policy, "--prompts", prompts, "--reward", policy],
            ["is a policy run (no reward head)"],
        ),  # fmt: skip
        "no such function": (
            ["--from", policy, "--prompts", prompts, "--reward", "json:nope"],
            ["--reward json:nope", "has no function 'nope'"],
        ),  # fmt: skip
        "no such module": (
            ["--from", policy, "--prompts", prompts, "--reward", "no_such_mod_xyz:fn"],
            ["cannot import no_such_mod_xyz"],
        ),  # fmt: skip
        "no --from": (["--prompts", prompts], ["init_from", "--from"]),
    }


@pytest.mark.parametrize("case", ["negative beta", "zero clip", "zero temperature",
                                  "episodes do not split", "no prompts", "no prompt fits",
                                  "reward model as policy", "policy as reward",
                                  "no such function", "no such module", "no --from"])  # fmt: skip
def test_bad_input_is_one_line_and_writes_nothing(
    case, policy, prompts, reward_run, tmp_path, capsys
):
    args, needles = _bad_cases(tmp_path, policy, prompts, reward_run)[case]
    out = tmp_path / "out"
    r = cli(capsys, "ppo", "--out", out, *PPO, *args)
    assert_clean_error(r, *needles)
    assert not out.exists()


def test_grpo_needs_groups(policy, prompts, tmp_path, capsys):
    r = cli(capsys, "grpo", "--from", policy, "--prompts", prompts, "--out", tmp_path / "o",
            *PPO, "--n", "1")  # fmt: skip
    assert_clean_error(r, "--n 2 or more")


@pytest.mark.slow
def test_two_processes_draw_their_own_rollouts_and_train_one_model(policy, prompts, tmp_path):
    """torchrun (gloo): each process samples its own 4 answers from its share of the prompt
    order; the iteration's row counts both (8); the gradients are all-reduced, so the one
    checkpoint is the model both processes hold; each process keeps its own buffer."""
    import os

    out = tmp_path / "ddp"
    args = [a for a in PPO]
    args[args.index("--episodes") + 1] = "4"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lmforge", "ppo", "--from", str(policy), "--prompts", str(prompts),
           "--out", str(out), *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    rows = read_jsonl(out / "ppo" / "iterations.jsonl")
    assert [r["episodes"] for r in rows] == [8, 8]
    a, b = (
        _buffer(out, 1),
        torch.load(out / "ppo" / "rollouts" / "iter-1.rank-1.pt", weights_only=True),
    )
    assert a["ids"].size(0) == b["ids"].size(0) == 4
    assert not torch.equal(a["ids"][:, :4], b["ids"][:, :4]) or not torch.equal(a["ids"], b["ids"])
    assert latest_checkpoint(out).name == "step_8"


def test_lora_on_the_policy_with_the_value_head_saves_opens_and_resumes(policy, prompts, tmp_path):
    """--lora adapts the policy under the value head: the checkpoint says so (metadata on the
    head model), `load_run` opens the merged policy, and --resume continues the run."""
    out = tmp_path / "lora"
    r = run_lmforge_inprocess("ppo", "--from", policy, "--prompts", prompts, "--out", out, *PPO,
                              "--iterations", "1", "--lora", "r=4,targets=q,v")  # fmt: skip
    assert r.returncode == 0, r.stderr
    run = load_run(out, need="decoder")
    assert not any("lora" in k for k in run.model.state_dict())  # merged for its users
    r = run_lmforge_inprocess("ppo", "--out", out, "--resume", "--iterations", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    assert latest_checkpoint(out).name == "step_8"
