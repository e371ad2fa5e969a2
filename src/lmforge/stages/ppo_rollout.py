"""`RolloutBatches`: PPO's and GRPO's batch source — a rollout buffer refilled every iteration.

An iteration begins at the first `next_batch()` after the previous iteration's
``ppo_epochs × minibatches × grad_accum`` micro-batches (or after an early stop):

1. **Rollout** (`rollout`): the next prompts of a seeded per-epoch order (this
   process's interleaved share), ``n`` answers each from the live policy through
   the one engine (`generate_full`: shared prefill, per-row seeds drawn from the
   iteration's generator, stop at ``<|end|>``/EOS — kept as the last action — or
   at ``max_new_tokens``);
2. **Scoring**, without gradients and in eval mode: log π_old of every action
   recomputed by a teacher-forced forward (the sampler's numbers differ slightly:
   batch shapes, padding, kernels), the critic's values (PPO), log π_ref from the
   frozen reference, the reward of each answer (`stages.rewards`; a failed call
   skips the answer and is counted);
3. **Advantages** (`advantages`): PPO: per-token rewards −β·KL with the score at
   the last action, GAE(γ, λ), whitened advantages; GRPO: each score minus its
   group's mean (over its std), the same at every action;
4. **Serving**: every epoch a seeded permutation of the buffer, cut into
   ``minibatches`` optimizer steps of ``grad_accum`` micro-batches (each trimmed
   to its longest row).

Files (RUN/ppo/): ``rollouts/iter-<k>.rank-<r>.pt`` — the buffer each process
trains on, written before its first micro-batch, so a resumed iteration re-reads
it rather than sampling again with weights that have moved; ``samples/iter-<k>.jsonl``
— every answer of the main process (prompt source, text, score, finish);
``iterations.jsonl`` — one row per iteration (rollout and update statistics,
β, wall time), written when the next iteration begins (`finish` writes the last).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..common import LmforgeError, atomic_write_text, get_logger, print0
from ..runs.layout import PPO_DIR
from ..train.ppo import UpdateStats, policy_forward
from ..train.ppo_math import (
    AdaptiveKL,
    explained_variance,
    gae,
    group_advantages,
    masked_mean,
    token_rewards,
    whiten,
)

ITERATION_STRIDE = 100_000_007
SCORE_ROWS = 64  # rows per no-grad scoring forward: wide matmuls, bounded activations  # seeds of iteration k: not a multiple of 2**32 (see rs_sampling)


@dataclass(frozen=True)
class RolloutSettings:
    """How rollouts are drawn, scored and served (from `PPOConfig`)."""

    algorithm: str = "ppo"
    episodes: int = 16
    n: int = 1
    ppo_epochs: int = 4
    minibatches: int = 2
    grad_accum: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 64
    gamma: float = 1.0
    lam: float = 0.95
    kl_penalty: str = "k1"
    whiten_rewards: bool = False
    scale_group_rewards: bool = True
    missing_eos_penalty: float = 0.0
    early_stop_kl: float = 0.0
    max_reward_errors: int = 10
    seed: int = 0
    stop_ids: tuple[int, ...] | None = None  # None: EOS and <|end|>; () runs to max_new_tokens
    share_prompts: bool = False  # score a prompt's n answers as branches of one row

    @property
    def single_pass(self) -> bool:
        """One optimizer step per rollout (GRPO's default): the update's own forward runs
        with the rollout's weights, so log π_old is that forward's (detached), as TRL does
        with num_iterations=1, and the rollout skips a policy forward."""
        return self.ppo_epochs * self.minibatches == 1

    @property
    def micro_batches(self) -> int:
        """Micro-batches served per iteration."""
        return self.ppo_epochs * self.minibatches * self.grad_accum

    @property
    def rows(self) -> int:
        """Rows per micro-batch."""
        return self.episodes // (self.minibatches * self.grad_accum)


def ppo_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / PPO_DIR


def _generator(*parts: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(sum(p * m for p, m in zip(parts, (1, ITERATION_STRIDE, 1_000_003, 7919))) % 2**62)
    return g


class RolloutBatches:
    """The batch source (see the module doc): `next_batch()` -> this process's micro-batch."""

    def __init__(
        self,
        model: torch.nn.Module,
        reference: torch.nn.Module,
        tok: Any,
        prompts: Sequence[Any],
        prompt_ids: Sequence[Sequence[int]],
        reward: Any,
        settings: RolloutSettings,
        kl: AdaptiveKL,
        stats: UpdateStats,
        *,
        run_dir: str | Path | None,
        ctx: Any = None,
        amp_dtype: torch.dtype | None = None,
        log: Callable[[str], None] = print0,
    ):
        self.model, self.reference, self.tok, self.reward = model, reference, tok, reward
        self.prompts, self.prompt_ids = list(prompts), [list(p) for p in prompt_ids]
        self.s, self.kl, self.stats = settings, kl, stats
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.ctx, self.amp_dtype, self.log = ctx, amp_dtype, log
        self.rank = ctx.rank if ctx is not None else 0
        self.world = ctx.world_size if ctx is not None else 1
        self.main = ctx is None or ctx.is_main
        self.iteration = 0  # the iteration being served (0: none drawn yet)
        self.served = 0  # micro-batches served in it
        self.epoch, self.cursor = 0, 0  # the prompt order's position
        self.reward_errors = 0
        self.elapsed = 0.0  # wall seconds of finished iterations (rollout + update)
        self.pending: dict[str, Any] | None = None  # this iteration's row, waiting for its update
        self.buffer: dict[str, torch.Tensor] | None = None
        self._rollout_end: float | None = None

    # --- the batch-source protocol ---------------------------------------------------

    def next_batch(self) -> dict[str, torch.Tensor]:
        if self.buffer is None or self.served >= self.s.micro_batches or self._stop_early():
            self._begin(self.iteration + 1)
        micro = self._micro(self.served)
        self.served += 1
        return micro

    def state_dict(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration, "served": self.served, "epoch": self.epoch,
            "cursor": self.cursor, "reward_errors": self.reward_errors, "elapsed": self.elapsed,
            "pending": self.pending, "kl": self.kl.state_dict(),
        }  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration, self.served = int(state["iteration"]), int(state["served"])
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])
        self.reward_errors, self.elapsed = int(state["reward_errors"]), float(state["elapsed"])
        self.pending = state["pending"]
        self.kl.load_state_dict(state["kl"])
        if self.iteration == 0:
            return
        if self.run_dir is None:
            raise LmforgeError("PPO resumes from its run folder; none was given")
        path = self._buffer_path(self.iteration)
        if not path.is_file():
            raise LmforgeError(
                f"{path}: missing; the run cannot resume iteration {self.iteration} without its "
                "rollout buffer (start over with --force)"
            )
        self.buffer = torch.load(path, map_location="cpu", weights_only=True)
        if self.main:  # rows of iterations the killed process had begun are written again
            keep = [r for r in read_iterations(self.run_dir) if r["iteration"] < self.iteration]
            _write_rows(self.run_dir, keep)

    def finish(self) -> None:
        """Write the last iteration's row (its update statistics are complete)."""
        self._close_iteration()

    # --- one iteration ---------------------------------------------------------------

    def _stop_early(self) -> bool:
        """At a step boundary: did the step just taken move the policy too far (approx KL)?"""
        if self.served == 0 or self.served % self.s.grad_accum:
            return False
        kl_sum, count = self.stats.take_step_kl()
        if not self.s.early_stop_kl:
            return False
        if self.ctx is not None and self.ctx.distributed:
            from ..train import distributed as D

            both = D.gather_objects((kl_sum, count), self.ctx)
            kl_sum, count = sum(b[0] for b in both), sum(b[1] for b in both)
        stop = count > 0 and kl_sum / count > 1.5 * self.s.early_stop_kl
        if stop and self.pending is not None:
            self.pending["early_stopped_at_step"] = self.served // self.s.grad_accum
        return stop

    def _close_iteration(self) -> None:
        if self.pending is None:
            return
        row = dict(self.pending)
        update = self.stats.take()
        now = time.perf_counter()
        update_s = now - self._rollout_end if self._rollout_end is not None else None
        row.update({f"update_{k}": v for k, v in update.items()})
        if row.get("kl") is None and "k1" in update:  # single pass: per action × actions per answer
            row["kl"] = update["k1"] * row["actions"] / max(row["valid"], 1)
        row["update_s"] = update_s
        if update_s:
            row["update_tokens_per_s"] = row["update_tokens"] / update_s
        self.elapsed += row["rollout_s"] + (update_s or 0.0)
        row["wall_s"] = self.elapsed
        self.pending = None
        if self.main and self.run_dir is not None:
            _append_row(self.run_dir, row)

    def _begin(self, iteration: int) -> None:
        self._close_iteration()
        self.stats.take_step_kl()  # the last step's KL belongs to the finished iteration
        t0 = time.perf_counter()
        buffer, row = self.rollout(iteration)
        self.buffer = buffer
        if self.run_dir is not None:
            path = self._buffer_path(iteration)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            torch.save(buffer, tmp)
            tmp.replace(path)
        row["rollout_s"] = time.perf_counter() - t0
        self.iteration, self.served = iteration, 0
        self.pending, self._rollout_end = row, time.perf_counter()
        self.log(_log_line(row, self.s.algorithm))

    def _buffer_path(self, iteration: int) -> Path:
        return ppo_dir(self.run_dir) / "rollouts" / f"iter-{iteration}.rank-{self.rank}.pt"

    def _micro(self, served: int) -> dict[str, torch.Tensor]:
        """Micro-batch `served` of the iteration: epoch e's seeded permutation, cut in rows."""
        per_epoch = self.s.minibatches * self.s.grad_accum
        epoch, k = divmod(served, per_epoch)
        E = self.buffer["ids"].size(0)
        perm = torch.randperm(
            E, generator=_generator(self.s.seed, self.iteration, epoch, self.rank)
        )
        rows = perm[k * self.s.rows : (k + 1) * self.s.rows]
        width = int(self.buffer["lengths"][rows].max())  # trim the padding columns
        return {name: t[rows, :width] for name, t in self.buffer.items() if t.dim() == 2}

    # --- drawing a rollout -----------------------------------------------------------

    def _next_prompts(self, count: int) -> list[int]:
        from ..data.sft import take_across_epochs

        def plan(epoch: int) -> list[int]:
            order = torch.randperm(len(self.prompts), generator=_generator(self.s.seed, 0, epoch))
            return order.tolist()[self.rank :: self.world] or order.tolist()

        chosen, self.epoch, self.cursor = take_across_epochs(plan, count, self.epoch, self.cursor)
        return chosen

    def rollout(self, iteration: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Draw, score and compute the advantages of one iteration's episodes."""
        from ..inference.engine import default_stop_ids, generate_full
        from ..inference.sampling import SamplingConfig
        from ..train.precision import autocast

        s = self.s
        chosen = self._next_prompts(s.episodes // s.n)
        g = _generator(s.seed, iteration, 0, self.rank + 1)
        seeds = torch.randint(0, 2**31 - 1, (len(chosen) * s.n,), generator=g).tolist()
        cfg = SamplingConfig(
            max_new_tokens=s.max_new_tokens, n=s.n, temperature=s.temperature, top_k=s.top_k,
            top_p=s.top_p, seed=None,
        )  # fmt: skip
        policy = getattr(self.model, "base", self.model) if s.algorithm == "ppo" else self.model
        device = str(next(self.model.parameters()).device)
        pad = self.tok.pad_id if self.tok.pad_id is not None else 0
        stops = default_stop_ids(self.tok) if s.stop_ids is None else list(s.stop_ids)
        was_training = self.model.training
        self.model.eval()
        t0 = time.perf_counter()
        try:
            with torch.no_grad(), autocast(device, self.amp_dtype):
                gens = generate_full(
                    policy, [self.prompt_ids[i] for i in chosen], cfg, pad_id=pad, seeds=seeds,
                    stop_ids=[stops] * len(chosen), include_stop=True,
                )  # fmt: skip
                gen_s = time.perf_counter() - t0
                batch = self._episodes(chosen, gens, pad)
                logp, values, ref_logp = self._score_actions(batch)
        finally:
            self.model.train(was_training)
        t1 = time.perf_counter()
        convs = [self.prompts[chosen[k // s.n]] for k in range(len(gens))]
        texts = [self.tok.decode([t for t in g.tokens if t not in stops]) for g in gens]
        scores, valid = self._scores(convs, texts, gens)
        score_s = time.perf_counter() - t1
        mask = batch["mask"] & valid[:, None]
        buffer, extra = self.advantages(batch["ids"], mask, batch["lengths"], logp, values,
                                        ref_logp, scores, valid)  # fmt: skip
        row = self._row(iteration, gens, scores, valid, logp, ref_logp, mask, batch["lengths"],
                        gen_s, score_s)  # fmt: skip
        row.update(extra)
        if self.main and self.run_dir is not None:
            self._write_samples(iteration, chosen, texts, scores, gens)
        return buffer, row

    def _episodes(self, chosen: list[int], gens: list[Any], pad: int) -> dict[str, torch.Tensor]:
        """(E, T) right-padded prompt + answer ids, the action mask and each row's length."""
        n = self.s.n
        seqs = [self.prompt_ids[chosen[k // n]] + list(g.tokens) for k, g in enumerate(gens)]
        T = max(len(q) for q in seqs)
        ids = torch.full((len(seqs), T), pad, dtype=torch.long)
        mask = torch.zeros(len(seqs), T, dtype=torch.bool)
        for k, q in enumerate(seqs):
            ids[k, : len(q)] = torch.tensor(q)
            mask[k, len(self.prompt_ids[chosen[k // n]]) : len(q)] = True
        lengths = torch.tensor([len(q) for q in seqs])
        return {"ids": ids, "mask": mask, "lengths": lengths}

    def _score_actions(self, batch: dict[str, torch.Tensor]):
        """log π_old, values (PPO) and log π_ref of every action, in chunks of `SCORE_ROWS`.

        GRPO with one update step per rollout skips log π_old (None): see `single_pass`.
        """
        ppo = self.s.algorithm == "ppo"
        policy = ppo or not self.s.single_pass
        device = str(next(self.model.parameters()).device)
        outs: list[tuple] = []
        for i in range(0, batch["ids"].size(0), SCORE_ROWS):
            ids = batch["ids"][i : i + SCORE_ROWS].to(device)
            mask = batch["mask"][i : i + SCORE_ROWS].to(device)
            logp = values = None
            if policy:
                logp, _, values = policy_forward(
                    self.model, ids, mask, value_head=ppo, temperature=self.s.temperature,
                    share_prompts=self.s.share_prompts,
                )  # fmt: skip
            ref, _, _ = policy_forward(
                self.reference, ids, mask, value_head=False, temperature=self.s.temperature,
                share_prompts=self.s.share_prompts,
            )  # fmt: skip
            outs.append(tuple(None if t is None else t.cpu() for t in (logp, values, ref)))
        cat = [None if outs[0][k] is None else torch.cat([o[k] for o in outs]) for k in range(3)]
        return cat[0], cat[1], cat[2]

    def _scores(self, convs, texts, gens) -> tuple[torch.Tensor, torch.Tensor]:
        """(scores (E,), valid (E,)): the reward of each answer; a failed call is not valid."""
        before = len(self.reward.errors)
        raw = self.reward.score(convs, texts)
        if len(raw) != len(texts):
            raise LmforgeError(f"the reward gave {len(raw)} scores for {len(texts)} answers")
        scores = torch.tensor(raw, dtype=torch.float32)
        valid = torch.isfinite(scores)
        failed = int((~valid).sum())
        self.reward_errors += failed
        if self.reward_errors > self.s.max_reward_errors:
            last = self.reward.errors[-1] if self.reward.errors else "a non-finite reward"
            raise LmforgeError(
                f"{last}; the reward failed on {self.reward_errors} answers in all, more "
                f"than --max-reward-errors {self.s.max_reward_errors}; fix the reward "
                "function or raise the limit"
            )
        for line in self.reward.errors[before:]:
            get_logger("ppo").warning(f"{line}; the answer is skipped")
        if self.s.missing_eos_penalty:
            cut = torch.tensor([g.finish_reason == "length" for g in gens])
            scores = torch.where(cut, scores - self.s.missing_eos_penalty, scores)
        return torch.where(valid, scores, 0.0), valid

    def advantages(self, ids, mask, lengths, logp, values, ref_logp, scores, valid):
        """The buffer (what the objective reads) and the row's advantage statistics."""
        s = self.s
        buf = {"ids": ids, "mask": mask, "lengths": lengths}
        if logp is not None:
            buf["old_logp"] = logp
        if s.algorithm == "grpo":
            adv_seq = group_advantages(scores, s.n, scale=s.scale_group_rewards, valid=valid)
            buf["advantages"] = adv_seq[:, None] * mask  # (E, T)
            buf["ref_logp"] = ref_logp
            return buf, {"beta": self.kl.beta, "zero_advantage_groups": _flat_groups(scores, s.n)}
        beta = self.kl.beta
        used = scores
        if s.whiten_rewards and int(valid.sum()) > 1:
            used = whiten(scores, valid, shift_mean=False)
        rewards, _ = token_rewards(used, logp, ref_logp, mask, beta, s.kl_penalty)
        adv, returns = gae(rewards, values, mask, s.gamma, s.lam)
        buf.update(advantages=whiten(adv, mask), old_values=values, returns=returns)
        seq_kl = ((logp - ref_logp) * mask).sum(1)  # (E,) nats per answer
        mean_kl = float(seq_kl[valid].mean()) if bool(valid.any()) else 0.0
        self.kl.update(mean_kl, int(valid.sum()) * self.world)
        return buf, {
            "beta": beta,
            "explained_variance": explained_variance(values, returns, mask),
            "mean_return": float(masked_mean(returns, mask)),
            "mean_value": float(masked_mean(values, mask)),
        }

    def _row(self, iteration, gens, scores, valid, logp, ref_logp, mask, lengths, gen_s, score_s):
        """The rollout's statistics (summed over processes under torchrun)."""
        new_tokens = sum(len(g.tokens) for g in gens)
        v = valid
        # Without a rollout log π_old (single pass) the KL comes from the update (its k1).
        kl = ((logp - ref_logp) * mask).sum(1) if logp is not None else None
        local = {
            "episodes": len(gens), "valid": int(v.sum()), "score_sum": float(scores[v].sum()),
            "kl_sum": float(kl[v].sum()) if kl is not None else math.nan, "stopped": sum(g.finish_reason == "stop" for g in gens),
            "new_tokens": new_tokens, "actions": int(mask.sum()),
            # Every epoch runs each row forward and backward: the update's token count.
            "update_tokens": int(lengths.sum()) * self.s.ppo_epochs,
            "gen_s": gen_s, "score_s": score_s,
        }  # fmt: skip
        if self.ctx is not None and self.ctx.distributed:
            from ..train import distributed as D

            parts = D.gather_objects(local, self.ctx)
        else:
            parts = [local]
        tot = {k: sum(p[k] for p in parts) for k in local if k not in ("gen_s", "score_s")}
        gen_s = max(p["gen_s"] for p in parts)
        valid_n = max(tot["valid"], 1)
        return {
            "iteration": iteration,
            "episodes": tot["episodes"],
            "skipped": tot["episodes"] - tot["valid"],
            "reward_errors": self.reward_errors,
            "mean_score": tot["score_sum"] / valid_n,
            "kl": tot["kl_sum"] / valid_n if math.isfinite(tot["kl_sum"]) else None,
            "valid": tot["valid"],
            "mean_length": tot["new_tokens"] / max(tot["episodes"], 1),
            "stopped_fraction": tot["stopped"] / max(tot["episodes"], 1),
            "generate_s": gen_s,
            "score_s": max(p["score_s"] for p in parts),
            "rollout_tokens_per_s": tot["new_tokens"] / gen_s if gen_s > 0 else None,
            "actions": tot["actions"],
            "update_tokens": tot["update_tokens"],
        }

    def _write_samples(self, iteration, chosen, texts, scores, gens) -> None:
        folder = ppo_dir(self.run_dir) / "samples"
        folder.mkdir(parents=True, exist_ok=True)
        lines = []
        for k, (text, g) in enumerate(zip(texts, gens, strict=True)):
            conv = self.prompts[chosen[k // self.s.n]]
            users = [m.content for m in conv.messages if m.role == "user"]
            lines.append(json.dumps({
                "source": conv.meta.get("where"), "prompt": users[-1] if users else "",
                "text": text, "score": float(scores[k]), "finish_reason": g.finish_reason,
                "new_tokens": len(g.tokens),
            }, ensure_ascii=False))  # fmt: skip
        atomic_write_text(folder / f"iter-{iteration}.jsonl", "\n".join(lines) + "\n")


def _flat_groups(scores: torch.Tensor, n: int) -> int:
    """Groups whose answers all scored alike (no learning signal for GRPO)."""
    g = scores.view(-1, n)
    return int((g.max(1).values == g.min(1).values).sum())


def read_iterations(run_dir: str | Path) -> list[dict[str, Any]]:
    """RUN/ppo/iterations.jsonl's rows ([] when there are none yet)."""
    path = ppo_dir(run_dir) / "iterations.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _write_rows(run_dir: Path, rows: list[dict[str, Any]]) -> None:
    path = ppo_dir(run_dir) / "iterations.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in rows))


def _append_row(run_dir: Path, row: dict[str, Any]) -> None:
    _write_rows(run_dir, [*read_iterations(run_dir), row])


def _f(v: Any, fmt: str = ".3f") -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, fmt)


def _log_line(r: dict[str, Any], name: str) -> str:
    return (
        f"{name}: iteration {r['iteration']}: {r['episodes']} answers in {r['rollout_s']:.1f} s "
        f"({_f(r['rollout_tokens_per_s'], '.0f')} new tok/s); mean score {_f(r['mean_score'])}, "
        f"KL {_f(r['kl'])}, length {r['mean_length']:.1f}, β {r['beta']:.4g}"
        + (f", {r['skipped']} skipped" if r["skipped"] else "")
    )
