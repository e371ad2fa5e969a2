"""`RejectionSamplingBatches`: the RS batch source, which regenerates its data every iteration.

It holds the policy (the very module the loop trains, so it samples with the live
weights), the prompts, the reward and the sampling settings. Iteration k+1 begins
at the first `next_batch()` after iteration k's ``steps_per_iteration × grad_accum``
micro-batches (and at the very first call): the round is sampled, scored and
selected (`rs_sampling.sample_round`), its files are written, and then the kept
conversations (prompt + best sample as the assistant turn) are served by a
`data.sft.PackedChatBatches` — the SFT stage's packing, trained by the SFT
objective.

Files, in RUN/rs/iter-<k>/ (written by the main process before the first batch
of the iteration is served, so every checkpoint of the iteration finds them):

* samples.jsonl — every sample: prompt index and source (file:line), sample
  index, seed, text, reward, finish reason, new tokens, kept;
* best.jsonl — the kept conversations in the messages format (`lmforge sft
  --data` reads it), with the reward and the prompt's fields;
* replay.jsonl — with `--replay`: the SFT conversations drawn for this iteration
  (`replay_ratio` per kept answer, seeded by the iteration), trained on together
  with the kept ones so the policy's own answers do not wear away what SFT taught;
* curve.json / curve.md / curve.png — best-of-n (max and median against n) and
  the iteration's summary (samples/s including scoring, kept, rewards).

Resume is exact without sampling again: `state_dict()` is {iteration, served
micro-batches, kept, replayed, the inner PackedChatBatches cursor}; `load_state_dict`
re-reads the iteration's best.jsonl (and replay.jsonl) and puts the cursor back. Training always
renders the conversations from their text (as best.jsonl holds them), so a
resumed iteration trains on exactly the rows the uninterrupted one did.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from ..common import LmforgeError, atomic_write_text, iter_jsonl, print0
from ..runs.layout import RS_DIR
from ..tokenizers.chat import Conversation
from .rs_curve import best_of_n_curve, describe_curve, write_curve
from .rs_sampling import Round, SamplingSettings, round_summary, sample_round

_NOT_COPIED = ("where", "messages")  # prompt meta not carried into best.jsonl


def iteration_dir(run_dir: str | Path, iteration: int) -> Path:
    """RUN/rs/iter-<k>."""
    return Path(run_dir) / RS_DIR / f"iter-{iteration}"


def best_records(prompts: Sequence[Conversation], rnd: Round) -> list[dict[str, Any]]:
    """best.jsonl's records: each kept prompt's messages + its best sample, and its fields."""
    out = []
    for r in rnd.kept:
        conv = prompts[r.index]
        meta = {k: v for k, v in conv.meta.items() if k not in _NOT_COPIED}
        messages = [*conv.to_dicts(), {"role": "assistant", "content": r.texts[r.best]}]
        out.append(
            {
                "messages": messages,
                **meta,  # the prompt's fields (answer, task, ...); ours below win a clash
                "source": conv.meta.get("where"),
                "prompt_index": r.index,
                "sample_index": r.best,
                "seed": r.seeds[r.best],
                "reward": r.rewards[r.best],
            }
        )
    return out


def sample_records(prompts: Sequence[Conversation], rnd: Round) -> list[dict[str, Any]]:
    """samples.jsonl's records: every sample of every prompt."""
    out = []
    for r in rnd.results:
        where = prompts[r.index].meta.get("where")
        for j, text in enumerate(r.texts):
            out.append(
                {
                    "prompt_index": r.index, "source": where, "sample_index": j,
                    "seed": r.seeds[j], "text": text, "reward": r.rewards[j],
                    "finish_reason": r.finish[j], "new_tokens": r.new_tokens[j],
                    "kept": r.kept and j == r.best,
                }
            )  # fmt: skip
    return out


def _jsonl(rows: Sequence[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def replay_records(
    pool: Sequence[Conversation], kept: int, ratio: float, seed: int, iteration: int
) -> list[dict[str, Any]]:
    """replay.jsonl's records: round(ratio × kept) of the SFT conversations (at most all),
    a seeded draw without replacement that depends only on the seed and the iteration;
    `replay_index` is the conversation's position in the --replay files as read."""
    count = min(len(pool), round(ratio * kept))
    picks = sorted(random.Random(f"rs-replay:{seed}:{iteration}").sample(range(len(pool)), count))
    return [  # fmt: skip
        {
            "messages": pool[i].to_dicts(),
            "task": pool[i].meta.get("task"),
            "replay_index": i,
            "replay": True,
        }
        for i in picks
    ]


def read_best(path: Path, what: str = "kept samples") -> list[dict[str, Any]]:
    """best.jsonl (or replay.jsonl) as written (a resumed iteration trains on these)."""
    if not path.is_file():
        raise LmforgeError(
            f"{path}: missing; the run cannot resume this iteration without its {what} "
            "(start over with --force)"
        )
    return [rec for _, rec in iter_jsonl(path)]


class RejectionSamplingBatches:
    """The RS batch source (see the module doc): `next_batch()` -> this rank's packed rows."""

    def __init__(
        self,
        model: torch.nn.Module,
        tok: Any,
        prompts: Sequence[Conversation],
        prompt_ids: Sequence[Sequence[int]],
        reward: Any,
        settings: SamplingSettings,
        *,
        iterations: int,
        steps_per_iteration: int,
        grad_accum: int,
        batch_size: int,
        seq_len: int,
        pad_id: int,
        seed: int,
        run_dir: str | Path | None,
        ctx: Any = None,
        amp_dtype: torch.dtype | None = None,
        log: Callable[[str], None] = print0,
        replay: Sequence[Conversation] = (),
        replay_ratio: float = 1.0,
    ):
        self.model, self.tok, self.reward, self.settings = model, tok, reward, settings
        self.prompts, self.prompt_ids = list(prompts), [list(p) for p in prompt_ids]
        self.iterations, self.grad_accum = iterations, grad_accum
        self.per_iteration = steps_per_iteration * grad_accum  # micro-batches
        self.batch_size, self.seq_len, self.pad_id, self.seed = batch_size, seq_len, pad_id, seed
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.ctx, self.amp_dtype, self.log = ctx, amp_dtype, log
        self.rank = ctx.rank if ctx is not None else 0
        self.world_size = ctx.world_size if ctx is not None else 1
        self.writes = self.run_dir is not None and (ctx is None or ctx.is_main)
        self.iteration = 0  # the iteration being served (0: none sampled yet)
        self.served = 0  # micro-batches served in it
        self.inner: Any = None  # PackedChatBatches over its kept conversations
        self.replay_pool, self.replay_ratio = list(replay), replay_ratio
        self.kept: list[dict[str, Any]] = []
        self.replayed: list[dict[str, Any]] = []  # this iteration's draw from replay_pool
        self.inner_stats: Any = None  # render stats of the kept conversations (data.sft)

    # --- the batch-source protocol ---------------------------------------------------

    def next_batch(self) -> dict[str, torch.Tensor]:
        if self.inner is None or self.served >= self.per_iteration:
            self._begin(self.iteration + 1)
        self.served += 1
        return self.inner.next_batch()

    def state_dict(self) -> dict[str, Any]:
        return {
            "iteration": self.iteration,
            "served": self.served,
            "kept": len(self.kept),
            "replayed": len(self.replayed),
            "inner": self.inner.state_dict() if self.inner is not None else None,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.iteration, self.served = int(state["iteration"]), int(state["served"])
        if self.iteration == 0:
            return
        if self.run_dir is None:
            raise LmforgeError("rejection sampling resumes from its run folder; none was given")
        folder = iteration_dir(self.run_dir, self.iteration)
        kept = read_best(folder / "best.jsonl")
        want = int(state.get("replayed", 0))
        replayed = read_best(folder / "replay.jsonl", "replayed SFT data") if want else []
        for name, got, was in (("best", kept, state["kept"]), ("replay", replayed, want)):
            if len(got) != int(was):
                raise LmforgeError(
                    f"{folder / name}.jsonl: holds {len(got)} conversations but the checkpoint "
                    f"was trained on {was}; the file was changed (start over with --force)"
                )
        self._serve(kept, replayed, folder)
        self.inner.load_state_dict(state["inner"])

    # --- one iteration ---------------------------------------------------------------

    def _begin(self, iteration: int) -> None:
        """Sample, score and select iteration `iteration`, write its files, serve its kept set."""
        if iteration > self.iterations:
            raise RuntimeError(f"iteration {iteration} asked of a run of {self.iterations}")
        rnd = sample_round(
            self.model, self.tok, self.prompts, self.prompt_ids, self.reward, self.settings,
            iteration, ctx=self.ctx, amp_dtype=self.amp_dtype,
        )  # fmt: skip
        summary = round_summary(rnd, iteration, self.settings)
        curve = best_of_n_curve([r.rewards for r in rnd.results])
        kept = best_records(self.prompts, rnd)
        folder = iteration_dir(self.run_dir, iteration) if self.run_dir is not None else None
        summary["curve_says"] = describe_curve(curve)
        self.log(_log_line(summary, self.iterations))
        if not kept:
            if self.writes:  # what was sampled stays readable (a resumed run keeps its folder)
                self._write(folder, rnd, kept, [], curve, summary, iteration)
            solved = summary["solved"] if self.settings.skip_solved else 0
            raise LmforgeError(
                f"rs iteration {iteration}: no prompt's best sample reached --min-reward "
                f"{self.settings.min_reward:g} (0 of {len(rnd.results)} prompts kept"
                + (f", {solved} solved by every sample left out by --skip-solved" if solved else "")
                + f", mean reward {_f(summary['mean_reward'])}); lower --min-reward, raise --n or "
                "--temperature, or start from a stronger policy"
            )
        replayed = (
            replay_records(self.replay_pool, len(kept), self.replay_ratio, self.seed, iteration)
            if self.replay_pool
            else []
        )
        self.iteration, self.served = iteration, 0
        self._serve(kept, replayed, folder)
        stats = self.inner_stats
        summary.update(trained=stats.kept, truncated=stats.truncated, too_long=stats.dropped,
                       replayed=len(replayed))  # fmt: skip
        if self.writes:  # before the iteration's first batch: its checkpoints find the files
            self._write(folder, rnd, kept, replayed, curve, summary, iteration)

    def _write(self, folder: Path, rnd: Round, kept, replayed, curve, summary, k: int) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "samples.jsonl", _jsonl(sample_records(self.prompts, rnd)))
        atomic_write_text(folder / "best.jsonl", _jsonl(kept))
        if replayed:
            atomic_write_text(folder / "replay.jsonl", _jsonl(replayed))
        title = f"rejection sampling, iteration {k}: best of n (N = {self.settings.n})"
        write_curve(folder, curve, summary, title)

    def _serve(self, kept: Sequence[dict], replayed: Sequence[dict], folder: Path | None) -> None:
        """The SFT batch source over the kept (and replayed) conversations, rendered from
        their text; render stats count the kept ones only."""
        from ..data.sft import PackedChatBatches, render_examples

        def convs(records: Sequence[dict], name: str) -> list[Conversation]:
            return [
                Conversation.from_dicts(rec["messages"], {"where": f"{folder}/{name}:{i + 1}"})
                for i, rec in enumerate(records)
            ]

        examples, stats = render_examples(self.tok, convs(kept, "best.jsonl"), self.seq_len)
        if replayed:
            more, _ = render_examples(self.tok, convs(replayed, "replay.jsonl"), self.seq_len)
            examples = [*examples, *more]
        self.kept, self.replayed, self.inner_stats = list(kept), list(replayed), stats
        self.inner = PackedChatBatches(
            examples, self.batch_size, self.seq_len, pad_id=self.pad_id,
            seed=self.seed + self.iteration, rank=self.rank, world_size=self.world_size,
        )  # fmt: skip


def _f(v: Any, fmt: str = ".3f") -> str:
    return "n/a" if v is None else format(v, fmt)


def _log_line(s: dict[str, Any], iterations: int) -> str:
    floor = "none" if s["min_reward"] is None else f"{s['min_reward']:g}"
    return (
        f"rs: iteration {s['iteration']}/{iterations}: {s['samples']:,} samples "
        f"({s['prompts']:,} prompts × {s['n']}) in {s['generate_s'] + s['score_s']:.1f} s, "
        f"{_f(s['samples_per_s'], '.1f')} samples/s including scoring; kept "
        f"{s['kept']:,}/{s['prompts']:,} (min reward {floor}"
        + (f"; {s['solved']:,} solved by every sample left out" if s.get("skip_solved") else "")
        + f"); mean reward "
        f"{_f(s['mean_reward'])}, mean best {_f(s['mean_best_reward'])}, max {_f(s['max_reward'])}"
    )
