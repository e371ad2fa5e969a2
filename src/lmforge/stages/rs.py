"""`lmforge rs`: rejection-sampling fine-tuning (LLaMA-2's RS stage), one run folder, the one loop.

`rs(cfg, resume=False)` follows the stage contract (`stages.base`). The policy
run (`--from`, an SFT run) gives the weights and the tokenizer; the prompts
(`data.preferences.read_prompts`) are asked of the live policy every iteration:
N samples each through the engine (one prefill shared by the N), scored by the
reward (`rewards`: the world's checker, its graded checker, or a reward-model
run), the best kept (ties by a seeded RNG; below `--min-reward` a prompt is not
trained on), and the policy fine-tuned on the kept conversations with the SFT
objective, for `--iterations K`. Nothing here is a second loop: the sampling is
the batch source (`rs_batches.RejectionSamplingBatches`), which regenerates its
data when an iteration's `--steps-per-iteration` steps are used up, so the loop's
checkpoints, signals, schedules, DDP and exact resume hold as for any stage.

Steps: `--steps-per-iteration S` (0: `default_steps`, about one pass over the
prompts' conversations in packed rows) so that the run's budget, K × S steps, is
known at the start
(the learning-rate schedule spans all iterations). Under torchrun every process
samples an interleaved share of the prompts with seeds that depend only on the
prompt, and the shares are gathered, so each process trains on the same kept
set a single process would; only the main process writes files.
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

from ..common import ConfigError, LmforgeError, dist_info, print0
from ..train.loop import TrainResult, budget_spent, state_counters, train
from ..train.sft import SFTObjective
from .base import (
    StageStart,
    build_stage_model,
    check_fits_memory,
    origin_note,
    run_stage,
    start_stage,
    trainable_note,
    write_run_files,
)
from .policy import (
    check_policy,
    policy_inputs,
    policy_model_and_tokenizer,
    read_policy_prompts,
)
from .rs_config import RSConfig, parse_min_reward

STAGE = "rs"


@dataclasses.dataclass
class _Prepared:
    """What training starts from: configs, model meta, tokenizer, prompts, reward, step plan."""

    cfg: RSConfig  # as given (saved as config.yaml)
    loop_cfg: RSConfig  # max_steps = iterations × steps per iteration (or the user's cap)
    arch: str
    mcfg: Any
    tok: Any
    parent_sd: dict[str, Any] | None
    seq_len: int
    pad_id: int
    prompts: list[Any]
    prompt_ids: list[list[int]]
    prompts_summary: str
    reward: Any
    min_reward: float | None
    steps_per_iteration: int
    replay: list[Any]  # SFT conversations mixed into each iteration's kept answers
    replay_summary: str


def rs(cfg: RSConfig, *, resume: bool = False) -> TrainResult:
    """Rejection-sampling fine-tuning as `cfg` says (continuing RUN/latest with `resume`)."""
    if not resume and not cfg.init_from:
        raise ConfigError("init_from", "required: the policy run to sample from (`--from RUN`)")
    # The step budget is known once the prompts are counted (`_prepare`): the spent-budget
    # check of a resume must not use a budget of the earlier session.
    check = dataclasses.replace(cfg, max_steps=None)
    from .sft import _recursive_root

    inputs = (*policy_inputs(cfg), *(("replay", _recursive_root(p)) for p in cfg.replay))
    start = start_stage(check, resume=resume, need="transformer-decoder", inputs=inputs)
    check_policy(start)
    # Before the lock: bad prompts, a wrong reward or a finished run leave the folder untouched.
    prep = _prepare(cfg, start)
    return run_stage(start, prep.cfg, "rs", "--iterations", lambda ctx: _run(prep, ctx, start))


def default_steps(
    cfg: RSConfig,
    tok: Any,
    prompts: list[Any],
    prompt_ids: list[list[int]],
    seq_len: int,
    world: int,
) -> int:
    """Steps of about one pass over the prompts' conversations, were every prompt kept.

    Kept conversations are packed many to a row, so the count is in packed rows: each
    prompt's tokens plus its answer's (the record's reference answer when it has one,
    else half of --max-new-tokens), over the row length, over the rows of a step.
    """
    answers = 0
    for conv in prompts:
        ref = conv.meta.get("reference")
        answers += len(tok.encode(ref)) + 2 if isinstance(ref, str) else cfg.max_new_tokens // 2
    tokens = sum(len(p) for p in prompt_ids) + answers
    rows = math.ceil(tokens / (seq_len + 1))
    return max(1, math.ceil(rows / (cfg.batch_size * cfg.grad_accum * world)))


def _prepare(cfg: RSConfig, start: StageStart) -> _Prepared:
    """Model meta, tokenizer, prompts, reward and the step plan, all checked before writing."""
    from .rewards import check_reward_unchanged, open_reward

    arch, mcfg, tok, parent_sd = policy_model_and_tokenizer(cfg, start)
    seq_len = cfg.seq_len or mcfg.block_size
    if seq_len > mcfg.block_size:
        raise ConfigError(
            "seq_len", f"{seq_len} is above the model's context block_size={mcfg.block_size}"
        )
    prompts, prompt_ids, summary = read_policy_prompts(cfg, tok, seq_len)
    reward = open_reward(cfg.reward, prompts, batch_size=cfg.reward_batch_size)
    if start.resume is not None:
        check_reward_unchanged(reward, start.resume.state.get("reward_model"))
    floor = parse_min_reward(cfg.min_reward)
    min_reward = reward.default_min if floor == "auto" else floor
    if cfg.skip_solved and min_reward is None:
        raise ConfigError(
            "skip_solved", f"needs a --min-reward, and --min-reward auto with the reward "
            f"{cfg.reward} means none; give a number"
        )  # fmt: skip
    replay, replay_summary = _read_replay(cfg)
    world = dist_info()[2]
    S = cfg.steps_per_iteration or default_steps(cfg, tok, prompts, prompt_ids, seq_len, world)
    if start.resume is not None:
        was = (start.resume.state.get("rs") or {}).get("steps_per_iteration")
        if was is not None and was != S:
            raise LmforgeError(
                f"{start.resume.path}: the run trains {was} steps per iteration, this resume "
                f"asks for {S}; resume with the run's --steps-per-iteration (and prompts)"
            )
    total = cfg.iterations * S
    loop_cfg = dataclasses.replace(cfg, max_steps=min(cfg.max_steps or total, total))
    if start.resume is not None and start.complete is None:
        start.complete = budget_spent(state_counters(start.resume.state), loop_cfg)
    check_fits_memory(arch, mcfg, cfg.batch_size, seq_len, cfg.device)
    pad = tok.pad_id if tok.pad_id is not None else tok.eos_id
    return _Prepared(cfg, loop_cfg, arch, mcfg, tok, parent_sd, seq_len, pad, prompts, prompt_ids,
                     summary, reward, min_reward, S, replay, replay_summary)  # fmt: skip


def _read_replay(cfg: RSConfig) -> tuple[list[Any], str]:
    """The `--replay` conversations (those with an answer to train on) and a summary line."""
    if not cfg.replay:
        return [], ""
    from ..data.instructions import read_instructions

    got = read_instructions(cfg.replay, skip_bad_lines=cfg.skip_bad_lines)
    convs = [c for c in got.conversations if c.has_assistant]
    if not convs:
        raise LmforgeError(
            f"--replay {' '.join(cfg.replay)}: no conversation with an assistant answer to "
            "train on; give SFT data (instruction records with their answers)"
        )
    return convs, (
        f"replay: {len(convs):,} SFT conversations from {', '.join(cfg.replay)}, "
        f"{cfg.replay_ratio:g} drawn per kept answer each iteration"
    )


def _run(p: _Prepared, ctx: Any, start: StageStart) -> TrainResult:
    from ..train.precision import resolve_dtype
    from .rs_batches import RejectionSamplingBatches
    from .rs_sampling import SamplingSettings

    cfg, loop_cfg = p.cfg, p.loop_cfg
    out = Path(cfg.out)
    model, n_params = build_stage_model(p.arch, p.mcfg, cfg.seed, p.parent_sd, lora=cfg.lora)
    p.reward.to(ctx.device)
    settings = SamplingSettings(
        n=cfg.n, temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k,
        max_new_tokens=cfg.max_new_tokens, batch_size=cfg.sample_batch_size, seed=cfg.seed,
        min_reward=p.min_reward, skip_solved=cfg.skip_solved,
    )  # fmt: skip
    batches = RejectionSamplingBatches(
        model, p.tok, p.prompts, p.prompt_ids, p.reward, settings,
        iterations=cfg.iterations, steps_per_iteration=p.steps_per_iteration,
        grad_accum=cfg.grad_accum, batch_size=cfg.batch_size, seq_len=p.seq_len,
        pad_id=p.pad_id, seed=cfg.seed, run_dir=out, ctx=ctx,
        amp_dtype=resolve_dtype(cfg.dtype, ctx.device, model),
        replay=p.replay, replay_ratio=cfg.replay_ratio,
    )  # fmt: skip
    if ctx.is_main:
        write_run_files(out, cfg, p.tok)
        origin = origin_note(start)
        floor = "none" if p.min_reward is None else f"{p.min_reward:g}"
        print0(
            f"rs: {p.arch} ({n_params / 1e6:.2f}M parameters{trainable_note(model)}), "
            f"{len(p.prompts):,} prompts × {cfg.n} samples (temperature {cfg.temperature:g}), "
            f"reward: {p.reward.describe}, min reward {floor}"
            f"{', solved prompts left out' if cfg.skip_solved else ''}; "
            f"{cfg.iterations} iteration(s) × "
            f"{p.steps_per_iteration} steps, batch {cfg.batch_size}×{cfg.grad_accum}×"
            f"{ctx.world_size} rows of {p.seq_len}; {origin}"
        )
    t0 = time.perf_counter()
    parent_info = start.parent_info
    result = train(
        model, SFTObjective(), batches, loop_cfg, run_dir=out, ctx=ctx, resume=start.resume,
        extra_state={
            "stage": STAGE, "tokenizer_hash": p.tok.hash,
            "model": {"arch": p.arch, **dataclasses.asdict(p.mcfg)},
            **({"parent": parent_info} if parent_info else {}),
            **({"reward_model": p.reward.record} if p.reward.record else {}),
            "rs": {"iterations": cfg.iterations, "steps_per_iteration": p.steps_per_iteration},
        },
        desc=STAGE,
    )  # fmt: skip
    if ctx.is_main:
        from .rs_report import write_rs_report

        write_rs_report(
            out, config=cfg, arch=p.arch, n_params=n_params, result=result,
            steps_per_iteration=p.steps_per_iteration, reward=p.reward.describe,
            min_reward=p.min_reward, parent=parent_info,
            prompts_summary="\n".join(x for x in (p.prompts_summary, p.replay_summary) if x),
            wall_s=time.perf_counter() - t0,
        )  # fmt: skip
        print0(
            f"rs: step {result.step} (iteration {batches.iteration}/{cfg.iterations}), train "
            f"loss {result.train_loss:.4f}; run folder {out}"
        )
    return result
