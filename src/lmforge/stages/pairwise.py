"""What the preference stages share: open the parent, read and fit the pairs, run the loop.

`reward train` (a scalar head and the ranking loss) and `dpo` (the policy and a
frozen reference) differ only in the model they build and the objective they
train; `run_pairwise_stage(cfg, resume, stage)` does the rest the same way for
both, following the stage contract (`stages.base`): the parent run (`--from`)
gives the weights and the tokenizer (it must have the chat template's role
tokens), the pairs are read by `lmforge.data.preferences`, rendered through the
chat template and fitted to `--seq-len` by `lmforge.data.preference_batches`,
and the one loop trains with both sides of each pair in one forward (on GPT and
LLaMA one row per pair, the prompt once: `--share-prompt`, on by default). With
`--epochs` the step budget follows from the number of pairs. `--resume`
continues bitwise (the data is read again; its cursor is in the checkpoint).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..common import ConfigError, LmforgeError, dist_info, move_to, print0
from ..train import distributed as D
from ..train.loop import TrainResult, budget_spent, state_counters, train
from .base import (
    StageStart,
    check_fits_memory,
    origin_note,
    run_stage,
    start_stage,
    trainable_note,
    write_run_files,
)
from .pairwise_config import PairwiseConfig


@dataclasses.dataclass
class Stage:
    """How one preference stage differs: its name, what its parent must be, model and objective.

    `build(prep, ctx, start) -> (model, n_params, objective, extra_state)` makes the
    model to train and its objective; `val_objective(prep, ctx, model)` the objective
    that scores validation pairs (None: the training one).
    """

    name: str
    head: bool  # the stage trains a reward model (a scalar head) rather than a policy
    build: Callable[..., tuple[Any, int, Any, dict[str, Any]]]
    val_objective: Callable[..., Any] | None = None
    report_rows: Callable[..., list[tuple[str, Any]]] | None = None


@dataclasses.dataclass
class PairsPrepared:
    """What training starts from: the config (steps set by --epochs), tokenizer, fitted pairs."""

    cfg: PairwiseConfig
    arch: str
    mcfg: Any
    tok: Any
    parent_sd: dict[str, Any] | None
    seq_len: int
    pad_id: int
    train: list[Any]
    val: list[Any]
    stats: Any
    val_stats: Any
    summary: str
    extras: dict[str, Any] = dataclasses.field(default_factory=dict)  # a stage's own state


def check_parent_role(start: StageStart, stage: Stage) -> None:
    """A reward run is not a policy and a policy is not a reward model: say which is which."""
    from ..models.heads import REWARD_KINDS, head_kind

    if start.parent is None:
        return
    kind = head_kind(start.parent.model)
    where = start.parent.path
    if kind in REWARD_KINDS and not stage.head:
        raise LmforgeError(
            f"--from {where}: is a reward model (it scores text, it does not generate); "
            f"`lmforge {stage.name}` needs a policy run (pretrain or sft) to start from"
        )
    if kind is not None and stage.head:
        raise LmforgeError(
            f"--from {where}: already has a {kind} head; start `lmforge reward train` from "
            "a policy run (pretrain or sft), or continue that run with --resume"
        )


def read_pairs(cfg: PairwiseConfig, paths: list[str]):
    from ..data.preferences import read_preferences

    return read_preferences(
        paths, fmt=cfg.fmt, rating_table=cfg.rating_table, skip_bad_lines=cfg.skip_bad_lines
    )


def prepare_pairs(cfg: PairwiseConfig, start: StageStart) -> PairsPrepared:
    """Tokenizer, model meta and fitted pairs; `--epochs` turned into steps."""
    from ..data.preference_batches import render_pairs
    from ..models import read_model_meta
    from ..runs.load import load_tokenizer
    from ..tokenizers.chat import chat_token_ids
    from .sft import split_val

    if start.resume is not None:
        arch, mcfg, _ = read_model_meta(start.resume.model_file)
        tok, parent_sd = load_tokenizer(cfg.out, start.resume), None
    else:
        arch, mcfg = start.parent.arch, start.parent.model.config
        tok, parent_sd = start.parent.tokenizer, start.parent.model.state_dict()
    chat_token_ids(tok)  # the one-line error (and the fix) for a tokenizer without roles
    seq_len = cfg.seq_len or mcfg.block_size
    if seq_len > mcfg.block_size:
        raise ConfigError(
            "seq_len", f"{seq_len} is above the model's context block_size={mcfg.block_size}"
        )
    got = read_pairs(cfg, cfg.data)
    summary = got.summary()
    if cfg.val_data:
        train_pairs, val_got = got.pairs, read_pairs(cfg, cfg.val_data)
        val_pairs = val_got.pairs
        summary += f"\nvalidation: {val_got.summary()}"
    else:
        train_pairs, val_pairs = split_val(got.pairs, cfg.val_fraction, cfg.seed)
    train_tok, stats = render_pairs(tok, train_pairs, seq_len)
    val_tok, val_stats = render_pairs(tok, val_pairs, seq_len) if val_pairs else ([], None)
    check_fits_memory(arch, mcfg, 2 * cfg.batch_size, seq_len, cfg.device)
    pad = tok.pad_id if tok.pad_id is not None else tok.eos_id
    if cfg.epochs is not None:
        per_step = cfg.batch_size * cfg.grad_accum * dist_info()[2]
        steps = max(1, math.ceil(len(train_tok) * cfg.epochs / per_step))
        cfg = dataclasses.replace(cfg, max_steps=steps)
        if start.resume is not None and start.complete is None:
            start.complete = budget_spent(state_counters(start.resume.state), cfg)
    return PairsPrepared(cfg, arch, mcfg, tok, parent_sd, seq_len, pad, train_tok, val_tok,
                         stats, val_stats, summary)  # fmt: skip


def shares_prompt(prep: PairsPrepared) -> bool:
    """Whether batches hold a pair per row (`collate_shared_pairs`): an attention decoder
    with --share-prompt; an RNN reads a row strictly in order and cannot branch."""
    from ..models.registry import supports_branches

    return prep.cfg.share_prompt and supports_branches(prep.arch)


def pair_batches(prep: PairsPrepared, pairs: list[Any], **kw: Any):
    """The stage's `PreferenceBatches` over `pairs` (its batch size, padding and layout)."""
    from ..data.preference_batches import PreferenceBatches

    return PreferenceBatches(
        pairs, prep.cfg.batch_size, pad_id=prep.pad_id, share_prompt=shares_prompt(prep), **kw
    )


def data_inputs(cfg: PairwiseConfig) -> tuple[tuple[str, str], ...]:
    from .sft import _recursive_root

    return tuple(("data", _recursive_root(p)) for p in [*cfg.data, *cfg.val_data])


def run_pairwise_stage(cfg: PairwiseConfig, resume: bool, stage: Stage) -> TrainResult:
    """Train `stage` as `cfg` says (continuing RUN/latest with `resume`)."""
    if not resume and not cfg.init_from:
        raise ConfigError("init_from", "required: the run to start from (`--from RUN`)")
    check = dataclasses.replace(cfg, max_steps=None) if cfg.epochs is not None else cfg
    start = start_stage(check, resume=resume, need="transformer-decoder", inputs=data_inputs(cfg))
    check_parent_role(start, stage)
    # Before the lock: bad data or a finished run leaves the folder untouched.
    prep = prepare_pairs(cfg, start)
    return run_stage(
        start,
        prep.cfg,
        stage.name,
        "--epochs" if cfg.epochs is not None else "--max-steps",
        lambda ctx: _run(prep, ctx, start, stage),
    )


def pair_evaluator(prep: PairsPrepared, ctx: Any, objective: Any):
    """Validation: the objective's mean loss and pairwise accuracy over the held-out pairs."""
    src = pair_batches(prep, prep.val, rank=ctx.rank, world_size=ctx.world_size, shuffle=False)
    batches = src.eval_batches()

    def evaluate(model: torch.nn.Module) -> dict[str, float]:
        total = torch.zeros(3, dtype=torch.float64, device=ctx.device)  # loss, right, pairs
        with torch.no_grad():
            for batch in batches:
                # A rank past the last pair still runs its (empty) batch: FSDP needs every
                # rank in every forward. Its metrics are means over nothing: not added.
                out = objective.compute_loss(model, move_to(batch, ctx.device))
                n = out.n_tokens
                if n:
                    total += torch.stack(
                        [out.loss_sum.double(), out.metrics["acc"].double() * n,
                         torch.as_tensor(n, dtype=torch.float64, device=ctx.device)]
                    )  # fmt: skip
        total = D.all_reduce_sum(total, ctx)
        loss, right, n = total.tolist()
        return {"val_loss": loss / max(n, 1), "val_acc": right / max(n, 1)}

    return evaluate


def _run(prep: PairsPrepared, ctx: Any, start: StageStart, stage: Stage) -> TrainResult:
    cfg, out = prep.cfg, Path(prep.cfg.out)
    batches = pair_batches(
        prep, prep.train, seed=cfg.seed, rank=ctx.rank, world_size=ctx.world_size
    )
    model, n_params, objective, extra = stage.build(prep, ctx, start)
    if ctx.is_main:
        write_run_files(out, cfg, prep.tok)
        origin = origin_note(start)
        s = prep.stats
        print0(
            f"{stage.name}: {prep.arch} ({n_params / 1e6:.2f}M parameters{trainable_note(model)}), "
            f"{s.kept:,} pairs ({s.truncated} truncated, {s.dropped} dropped), "
            f"{len(prep.val):,} validation pairs, batch {cfg.batch_size}×{cfg.grad_accum}×"
            f"{ctx.world_size} pairs, "
            f"{'a row per pair (the prompt once)' if shares_prompt(prep) else 'a row per answer'}"
            f", prompt + answer ≤ {prep.seq_len} tokens; {origin}"
        )
    evaluator = None
    if prep.val:
        val_objective = stage.val_objective(prep, ctx, model) if stage.val_objective else objective
        evaluator = pair_evaluator(prep, ctx, val_objective)
    t0 = time.perf_counter()
    parent_info = start.parent_info
    result = train(
        model, objective, batches, cfg, run_dir=out, ctx=ctx, evaluator=evaluator,
        resume=start.resume,
        extra_state={
            "stage": stage.name, "tokenizer_hash": prep.tok.hash,
            "model": {"arch": prep.arch, **dataclasses.asdict(prep.mcfg)},
            **({"parent": parent_info} if parent_info else {}), **extra,
        },
        desc=stage.name,
    )  # fmt: skip
    if ctx.is_main:
        from ..eval.report import write_pairwise_report

        write_pairwise_report(
            out, stage=stage.name, config=cfg, arch=prep.arch, n_params=n_params,
            result=result, stats=prep.stats, val_stats=prep.val_stats, summary=prep.summary,
            parent=parent_info, wall_s=time.perf_counter() - t0,
            rows=stage.report_rows(prep) if stage.report_rows else [],
        )  # fmt: skip
        val = "".join(f", {k.replace('_', ' ')} {v:.4f}" for k, v in result.val.items())
        print0(
            f"{stage.name}: step {result.step}, train loss {result.train_loss:.4f}{val}; "
            f"run folder {out}"
        )
    return result
