"""`lmforge ppo` / `lmforge grpo`: RL fine-tuning of a policy run, one run folder, the one loop.

`ppo(cfg, resume=False)` follows the stage contract (`stages.base`). The policy
run (`--from`, an SFT run) gives the weights, the tokenizer and the frozen
reference (a copy written to RUN/reference.safetensors at the start, so a resume
needs no parent). The trained module is:

* PPO: the policy with a value head on its trunk (`models.heads.WithValueHead`:
  the textbook's "the value function is the same model with a linear head"),
  trained by `train.ppo.PPOObjective`;
* GRPO: the plain policy, trained by `train.ppo.GRPOObjective` (no critic).

The batch source is `ppo_rollout.RolloutBatches`: at each iteration it samples
``--episodes`` answers with the live policy through the engine, scores them
(`stages.rewards`), computes advantages, and serves ``ppo_epochs × minibatches``
optimizer steps of minibatches. Nothing here is a second loop: checkpoints,
signals, schedules, DDP and exact resume are the loop's; the run's budget is
``iterations × ppo_epochs × minibatches`` steps, known at the start (an early stop
on the approximate KL ends an iteration's updates sooner and the next rollout
begins, so an early-stopping run draws more rollouts in the same steps).

Under torchrun each process draws its own rollouts (an interleaved share of the
prompt order, its own seeds) and the loop all-reduces the gradients; only the
main process writes the run's files (every process its rollout buffer).
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from ..common import ConfigError, LmforgeError, print0
from ..runs.layout import REFERENCE_FILE
from ..train.loop import TrainResult, budget_spent, state_counters, train
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
from .ppo_config import PPOConfig

STAGES = {"ppo": "ppo", "grpo": "grpo"}  # algorithm -> the stage name in trainer_state


@dataclasses.dataclass
class _Prepared:
    cfg: PPOConfig
    loop_cfg: PPOConfig
    arch: str
    mcfg: Any
    tok: Any
    parent_sd: dict[str, Any] | None
    pad_id: int
    prompts: list[Any]
    prompt_ids: list[list[int]]
    prompts_summary: str
    reward: Any


def ppo(cfg: PPOConfig, *, resume: bool = False, verb: str | None = None) -> TrainResult:
    """PPO or GRPO (`cfg.algorithm`) as `cfg` says (continuing RUN/latest with `resume`).

    `verb` (the CLI's "ppo" or "grpo") must agree with the algorithm: a resumed run's
    config.yaml says which it is.
    """
    if verb is not None and cfg.algorithm != verb:
        raise LmforgeError(
            f"{cfg.out}: is a {cfg.algorithm} run; "
            + (f"resume it with `lmforge {cfg.algorithm} --resume`" if resume
               else f"use `lmforge {cfg.algorithm}` or --algorithm {verb}")
        )  # fmt: skip
    if not resume and not cfg.init_from:
        raise ConfigError("init_from", "required: the policy run to fine-tune (`--from RUN`)")
    check = dataclasses.replace(cfg, max_steps=None)
    start = start_stage(check, resume=resume, need="transformer-decoder", inputs=policy_inputs(cfg))
    check_policy(start)
    prep = _prepare(cfg, start)  # before the lock: bad input leaves the folder untouched
    name = STAGES[cfg.algorithm]
    return run_stage(start, prep.cfg, name, "--iterations", lambda ctx: _run(prep, ctx, start))


def _prepare(cfg: PPOConfig, start: StageStart) -> _Prepared:
    from .rewards import check_reward_unchanged, open_reward

    if start.resume is not None:
        was = start.resume.state.get("stage")
        if was in STAGES.values() and was != STAGES[cfg.algorithm]:
            raise LmforgeError(
                f"{start.resume.path}: is a {was} run; resume it with `lmforge {was} --resume`"
            )
    arch, mcfg, tok, parent_sd = policy_model_and_tokenizer(cfg, start)
    prompts, prompt_ids, summary = read_policy_prompts(cfg, tok, mcfg.block_size - 1)
    reward = open_reward(cfg.reward, prompts, batch_size=cfg.reward_batch_size)
    if start.resume is not None:
        check_reward_unchanged(reward, start.resume.state.get("reward_model"))
    if reward.tokenizer is not None and reward.tokenizer.hash != tok.hash:
        summary += (
            "; the reward model's tokenizer differs from the policy's: answers are scored as "
            "text, re-tokenized with the reward model's own tokenizer"
        )
    total = cfg.iterations * cfg.steps_per_iteration
    loop_cfg = dataclasses.replace(
        cfg, max_steps=min(cfg.max_steps or total, total), batch_size=cfg.rows_per_micro_batch
    )
    if start.resume is not None and start.complete is None:
        start.complete = budget_spent(state_counters(start.resume.state), loop_cfg)
    longest = max(len(p) for p in prompt_ids) + cfg.max_new_tokens
    check_fits_memory(arch, mcfg, cfg.rows_per_micro_batch, min(longest, mcfg.block_size),
                      cfg.device)  # fmt: skip
    pad = tok.pad_id if tok.pad_id is not None else tok.eos_id
    return _Prepared(cfg, loop_cfg, arch, mcfg, tok, parent_sd, pad, prompts, prompt_ids,
                     summary, reward)  # fmt: skip


def _reference(p: _Prepared, out: Path, ctx: Any, start: StageStart):
    """The frozen reference policy: the parent's weights, kept in RUN/reference.safetensors."""
    from ..models import build_model, load_model, save_model

    path = out / REFERENCE_FILE
    if start.resume is not None:
        if not path.is_file():
            raise LmforgeError(
                f"{path}: missing; the run cannot resume without its reference policy (start "
                "over with --force)"
            )
        ref = load_model(path)
    else:
        ref = build_model(p.arch, p.mcfg)
        ref.load_state_dict(p.parent_sd)
        if ctx.is_main:
            save_model(ref, path)
    for w in ref.parameters():
        w.requires_grad_(False)
    return ref.to(ctx.device).eval()


def shares_prompts(cfg: PPOConfig, arch: str) -> bool:
    """Whether answers to one prompt run it once (`train.ppo.shared_prompt_layout`): an
    attention decoder with --share-prompt and more than one answer per prompt."""
    from ..models.registry import supports_branches

    return cfg.share_prompt and cfg.n > 1 and supports_branches(arch)


def _objective(cfg: PPOConfig, arch: str):
    from ..train.ppo import GRPOObjective, PPOObjective

    share = shares_prompts(cfg, arch)
    if cfg.algorithm == "grpo":
        return GRPOObjective(beta=cfg.beta, clip=cfg.clip, entropy_coef=cfg.entropy_coef,
                             temperature=cfg.temperature, share_prompts=share)  # fmt: skip
    return PPOObjective(
        clip=cfg.clip, value_clip=cfg.value_clip or None, value_coef=cfg.value_coef,
        entropy_coef=cfg.entropy_coef, temperature=cfg.temperature, share_prompts=share,
    )  # fmt: skip


def _run(p: _Prepared, ctx: Any, start: StageStart) -> TrainResult:
    import torch

    from ..models.heads import WithValueHead
    from ..train.ppo_math import AdaptiveKL
    from ..train.precision import resolve_dtype
    from .ppo_rollout import RolloutBatches, RolloutSettings

    cfg, loop_cfg = p.cfg, p.loop_cfg
    out = Path(cfg.out)
    policy, n_params = build_stage_model(p.arch, p.mcfg, cfg.seed, p.parent_sd, lora=cfg.lora)
    model = policy
    if cfg.algorithm == "ppo":
        torch.manual_seed(cfg.seed)  # the value head's init, the same on every process
        model = WithValueHead(policy)
    if ctx.is_main:
        write_run_files(out, cfg, p.tok)
    reference = _reference(p, out, ctx, start)
    p.reward.to(ctx.device)
    settings = RolloutSettings(
        algorithm=cfg.algorithm, episodes=cfg.episodes, n=cfg.n, ppo_epochs=cfg.ppo_epochs,
        minibatches=cfg.minibatches, grad_accum=cfg.grad_accum, temperature=cfg.temperature,
        top_p=cfg.top_p, top_k=cfg.top_k, max_new_tokens=cfg.max_new_tokens, gamma=cfg.gamma,
        lam=cfg.lam, kl_penalty=cfg.kl_penalty, whiten_rewards=cfg.whiten_rewards,
        scale_group_rewards=cfg.scale_group_rewards, missing_eos_penalty=cfg.missing_eos_penalty,
        early_stop_kl=cfg.early_stop_kl, max_reward_errors=cfg.max_reward_errors, seed=cfg.seed,
        share_prompts=shares_prompts(cfg, p.arch),
    )  # fmt: skip
    objective = _objective(cfg, p.arch)
    kl = AdaptiveKL(cfg.beta, cfg.kl_target or None, cfg.kl_horizon)
    batches = RolloutBatches(
        model, reference, p.tok, p.prompts, p.prompt_ids, p.reward, settings, kl,
        objective.stats, run_dir=out, ctx=ctx,
        amp_dtype=resolve_dtype(cfg.dtype, ctx.device, model),
    )  # fmt: skip
    name = STAGES[cfg.algorithm]
    if ctx.is_main:
        critic = "value head on the policy's trunk" if cfg.algorithm == "ppo" else "no critic"
        print0(
            f"{name}: {p.arch} ({n_params / 1e6:.2f}M parameters{trainable_note(policy)}, "
            f"{critic}), {len(p.prompts):,} prompts, {cfg.episodes} answers per iteration"
            f"{f' ({cfg.n} per prompt)' if cfg.n > 1 else ''} × {ctx.world_size} process(es), "
            f"reward: {p.reward.describe}; {cfg.iterations} iterations × {cfg.ppo_epochs} epochs × "
            f"{cfg.minibatches} minibatches; β {cfg.beta:g}; {origin_note(start)}"
        )
    t0 = time.perf_counter()
    parent_info = start.parent_info
    result = train(
        model, objective, batches, loop_cfg, run_dir=out, ctx=ctx, resume=start.resume,
        extra_state={
            "stage": name, "tokenizer_hash": p.tok.hash,
            "model": {"arch": p.arch, **dataclasses.asdict(p.mcfg)},
            **({"parent": parent_info} if parent_info else {}),
            **({"reward_model": p.reward.record} if p.reward.record else {}),
        },
        desc=name,
    )  # fmt: skip
    batches.finish()
    if ctx.is_main:
        from .ppo_report import write_ppo_report

        write_ppo_report(
            out, config=cfg, arch=p.arch, n_params=n_params, result=result,
            reward=p.reward.describe, prompts_summary=p.prompts_summary, parent=parent_info,
            wall_s=time.perf_counter() - t0,
        )  # fmt: skip
        print0(f"{name}: step {result.step} (iteration {batches.iteration}), run folder {out}")
    return result
