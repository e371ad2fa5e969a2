"""`lmforge sft`: supervised fine-tuning of a decoder run on conversations, into a new run.

`sft(cfg, resume=False)` follows the stage contract (`stages.base`): the parent
run (`--from`) gives the weights and the tokenizer, whose chat role tokens the
template needs (`--add-chat-tokens` adds them and grows the embeddings); the
data (instruction files or a mixture YAML, `lmforge.data.instructions`) is
rendered through the chat template and packed with document masking
(`lmforge.data.sft`); the one loop trains `SFTObjective` (loss averaged over
assistant tokens) and the run folder gets checkpoints, metrics, plots and a
report that says how many tokens were trained on. `--resume` continues the
run bitwise (the data is read again; its cursor is in the checkpoint).
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from pathlib import Path
from typing import Any

import torch

from ..common import ConfigError, dist_info, print0
from ..train import distributed as D
from ..train.loop import TrainResult, budget_spent, state_counters, train
from ..train.sft import SFTObjective
from .base import (
    StageStart,
    build_stage_model,
    check_fits_memory,
    check_resume_lora,
    origin_note,
    run_stage,
    start_stage,
    trainable_note,
    write_run_files,
)
from .sft_config import SFTConfig

STAGE = "sft"
CHAT_ROLES = {"system": "<|system|>", "user": "<|user|>", "assistant": "<|assistant|>",
              "end": "<|end|>"}  # fmt: skip


def read_conversations(cfg: SFTConfig, paths: list[str]) -> tuple[list[Any], str]:
    """Conversations of `paths` (instruction files, or one mixture YAML) and a summary."""
    from ..data.instructions import load_mixture, read_instructions

    if len(paths) == 1 and paths[0].endswith((".yaml", ".yml")):
        mix = load_mixture(paths[0])
        return mix.conversations, mix.report()
    got = read_instructions(paths, fmt=cfg.fmt, skip_bad_lines=cfg.skip_bad_lines)
    return got.conversations, got.summary()


def data_inputs(paths: list[str]) -> tuple[tuple[str, str], ...]:
    """What `--out` may not overlap: each data path and, for a mixture YAML, its sources
    too (a run written into a data folder would be read back as data: folders and `**`
    globs are read recursively, and metrics.jsonl is a .jsonl file)."""
    from ..data.instructions import load_mixture_spec

    found = list(paths)
    for p in paths:
        if p.endswith((".yaml", ".yml")):
            found += [src.path for src in load_mixture_spec(p).sources]
    return tuple(("data", _recursive_root(p)) for p in found)


def _recursive_root(path: str) -> str:
    """The folder a recursive glob searches ("d/**/*.jsonl" -> "d"); any other path as is."""
    parts = Path(path).parts
    if "**" not in parts:
        return path
    i = next(i for i, part in enumerate(parts) if any(ch in part for ch in "*?["))
    return str(Path(*parts[:i])) if i else "."


def split_val(convs: list[Any], fraction: float, seed: int) -> tuple[list[Any], list[Any]]:
    """(train, val): a seeded `fraction` of the conversations held out."""
    if fraction <= 0 or len(convs) < 2:
        return convs, []
    idx = list(range(len(convs)))
    random.Random(seed).shuffle(idx)
    k = max(1, int(round(len(convs) * fraction)))
    held = set(idx[:k])
    return [c for i, c in enumerate(convs) if i not in held], [convs[i] for i in sorted(held)]


def _model_and_tokenizer(cfg: SFTConfig, start: StageStart) -> tuple[str, Any, Any, Any]:
    """(arch, model config, tokenizer, parent state dict or None), role tokens ensured."""
    from ..models import read_model_meta, resize_token_embeddings
    from ..runs.load import load_tokenizer
    from ..tokenizers.chat import chat_token_ids, has_chat_tokens

    if start.resume is not None:
        arch, mcfg, _ = read_model_meta(start.resume.model_file)
        check_resume_lora(start.resume, cfg.lora)
        tok = load_tokenizer(cfg.out, start.resume)
        return arch, mcfg, tok, None
    parent = start.parent
    tok, model = parent.tokenizer, parent.model
    if not has_chat_tokens(tok):
        if not cfg.add_chat_tokens:
            chat_token_ids(tok)  # raises the one-line error with the fix
        tok.add_special_tokens({r: t for r, t in CHAT_ROLES.items() if tok.special_id(r) is None})
        if tok.vocab_size > model.config.vocab_size:
            resize_token_embeddings(model, tok.vocab_size)
        print0(f"sft: added chat role tokens; vocabulary now {tok.vocab_size}")
    chat_token_ids(tok)
    return parent.arch, model.config, tok, model.state_dict()


def sft(cfg: SFTConfig, *, resume: bool = False) -> TrainResult:
    """Fine-tune as `cfg` says (continuing RUN/latest with `resume`); returns the loop's result."""
    if not resume and not cfg.init_from:
        raise ConfigError("init_from", "required: the run to fine-tune (`--from RUN`)")
    inputs = data_inputs([*cfg.data, *cfg.val_data])
    # With --epochs the step budget is known only once the data is packed (`_prepare`), so
    # the spent-budget check of a resume must not use the max_steps of the earlier session
    # (`--resume --epochs 2` of a 1-epoch run trains on).
    check = dataclasses.replace(cfg, max_steps=None) if cfg.epochs is not None else cfg
    start = start_stage(check, resume=resume, need="transformer-decoder", inputs=inputs)
    # Before the lock: bad data or a finished run leaves the folder untouched (and --force
    # empties an old run only once the new one is known to start).
    prep = _prepare(cfg, start)
    return run_stage(
        start,
        prep.cfg,
        "sft",
        "--epochs" if cfg.epochs is not None else "--max-steps",
        lambda ctx: _run(prep, ctx, start),
    )


@dataclasses.dataclass
class _Prepared:
    """What training starts from: the config (steps set by --epochs), model, tokenizer, data."""

    cfg: SFTConfig
    arch: str
    mcfg: Any
    tok: Any
    parent_sd: dict[str, Any] | None
    seq_len: int
    pad_id: int
    train_ex: list[Any]
    val_ex: list[Any]
    stats: Any
    val_stats: Any
    data_summary: str


def _prepare(cfg: SFTConfig, start: StageStart) -> _Prepared:
    """Model, tokenizer and rendered data; `--epochs` turned into steps, and (on resume)
    whether the run's budget is already spent (`start.complete`)."""
    from ..data.sft import PackedChatBatches, render_examples

    arch, mcfg, tok, parent_sd = _model_and_tokenizer(cfg, start)
    seq_len = cfg.seq_len or mcfg.block_size
    if seq_len > mcfg.block_size:
        raise ConfigError(
            "seq_len", f"{seq_len} is above the model's context block_size={mcfg.block_size}"
        )
    convs, data_summary = read_conversations(cfg, cfg.data)
    if cfg.val_data:
        train_convs, (val_convs, _) = convs, read_conversations(cfg, cfg.val_data)
    else:
        train_convs, val_convs = split_val(convs, cfg.val_fraction, cfg.seed)
    # seq_len + 1 tokens per row: seq_len inputs, each with its next token as target.
    train_ex, stats = render_examples(tok, train_convs, seq_len)
    val_ex, val_stats = render_examples(tok, val_convs, seq_len) if val_convs else ([], None)
    check_fits_memory(arch, mcfg, cfg.batch_size, seq_len, cfg.device)
    pad = tok.pad_id if tok.pad_id is not None else tok.eos_id
    plan = PackedChatBatches(train_ex, cfg.batch_size, seq_len, pad_id=pad, seed=cfg.seed)
    if cfg.epochs is not None:
        per_step = cfg.batch_size * cfg.grad_accum * dist_info()[2]
        steps = max(1, math.ceil(plan.rows_in_epochs(cfg.epochs) / per_step))
        cfg = dataclasses.replace(cfg, max_steps=steps)
        if start.resume is not None and start.complete is None:
            start.complete = budget_spent(state_counters(start.resume.state), cfg)
    return _Prepared(cfg, arch, mcfg, tok, parent_sd, seq_len, pad, train_ex, val_ex, stats,
                     val_stats, data_summary)  # fmt: skip


def _run(p: _Prepared, ctx: Any, start: StageStart) -> TrainResult:
    from ..data.sft import PackedChatBatches
    from ..eval.perplexity import mean_loss

    cfg, arch, mcfg, tok, seq_len, pad = p.cfg, p.arch, p.mcfg, p.tok, p.seq_len, p.pad_id
    stats, val_stats, parent_sd, val_ex = p.stats, p.val_stats, p.parent_sd, p.val_ex
    out = Path(cfg.out)
    batches = PackedChatBatches(
        p.train_ex, cfg.batch_size, seq_len, pad_id=pad, seed=cfg.seed, rank=ctx.rank,
        world_size=ctx.world_size,
    )  # fmt: skip
    model, n_params = build_stage_model(arch, mcfg, cfg.seed, parent_sd, lora=cfg.lora)
    if ctx.is_main:
        write_run_files(out, cfg, tok)
        origin = origin_note(start)
        print0(
            f"sft: {arch} ({n_params / 1e6:.2f}M parameters{trainable_note(model)}), "
            f"{stats.kept:,} conversations "
            f"({stats.truncated} truncated, {stats.dropped} dropped), "
            f"{batches.rows_per_epoch:,} packed rows of {seq_len} per epoch, "
            f"{stats.targets:,} assistant tokens per epoch, batch {cfg.batch_size}×"
            f"{cfg.grad_accum}×{ctx.world_size}, {_budget(cfg)}; {origin}"
        )
    evaluator = None
    if val_ex:
        val = PackedChatBatches(
            val_ex, cfg.batch_size, seq_len, pad_id=pad, rank=ctx.rank,
            world_size=ctx.world_size, shuffle=False,
        )  # fmt: skip
        val_batches = val.eval_batches()

        def evaluator(m: torch.nn.Module) -> dict[str, float]:
            loss, _ = mean_loss(
                m, SFTObjective(), val_batches, device=ctx.device,
                all_reduce_sum=lambda t: D.all_reduce_sum(t, ctx),
            )  # fmt: skip
            return {"val_loss": loss}

    t0 = time.perf_counter()
    parent_info = start.parent_info
    result = train(
        model,
        SFTObjective(),
        batches,
        cfg,
        run_dir=out,
        ctx=ctx,
        evaluator=evaluator,
        resume=start.resume,
        extra_state={
            "stage": STAGE,
            "tokenizer_hash": tok.hash,
            "model": {"arch": arch, **dataclasses.asdict(mcfg)},
            **({"parent": parent_info} if parent_info else {}),
        },
        desc="sft",
    )
    if ctx.is_main:
        from ..eval.report import write_sft_report

        write_sft_report(
            out, config=cfg, arch=arch, n_params=n_params, result=result, stats=stats,
            val_stats=val_stats, rows_per_epoch=batches.rows_per_epoch, seq_len=seq_len,
            data_summary=p.data_summary, parent=parent_info, wall_s=time.perf_counter() - t0,
        )  # fmt: skip
        val = f", val loss {result.val['val_loss']:.4f}" if "val_loss" in result.val else ""
        print0(
            f"sft: step {result.step}, train loss {result.train_loss:.4f}{val}; run folder {out}"
        )
    return result


def _budget(cfg: SFTConfig) -> str:
    """What ends the run, for the start line."""
    parts = [f"{cfg.max_steps:,} steps" if cfg.max_steps else ""]
    parts.append(f"{cfg.max_tokens:,} tokens" if cfg.max_tokens else "")
    parts.append(f"{cfg.max_time:g} s" if cfg.max_time else "")
    return "at most " + ", ".join(p for p in parts if p)
