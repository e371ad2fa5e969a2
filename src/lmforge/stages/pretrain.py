"""`lmforge pretrain`: a GPT or LLaMA trained on token shards, into a complete run folder.

`pretrain(cfg, resume=False)` checks the config against the data and the model
before anything heavy (sequence length above the context, tokenizer larger than
the vocabulary, a checkpoint from another tokenizer), builds the model from its
preset and `--model.*` overrides, runs the one loop with the arch's objective
(`objectives_for`: next token; for an RNN with the hidden state carried across
sequential windows; for BERT masked LM), and ends with samples and report.md.

Vocabulary: a model's `vocab_size` is the tokenizer's unless `--model.vocab-size`
says otherwise (presets describe shapes; the tokenizer decides the ids). A
vocabulary smaller than the tokenizer's is an error.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch

from ..common import ConfigError, LmforgeError, print0
from ..runs import RunLayout
from ..runs.checkpoint import Checkpoint
from ..train import distributed as D
from ..train.causal_lm import CausalLMObjective
from ..train.loop import TrainResult, train
from .base import (
    StageStart,
    build_stage_model,
    check_fits_memory,
    check_parent_tokenizer,
    check_resume_lora,
    start_stage,
    trainable_note,
    write_run_files,
)
from .pretrain_config import PretrainConfig

STAGE = "pretrain"


def model_config_for(cfg: PretrainConfig, tokenizer_vocab: int) -> tuple[str, Any]:
    """(arch, model config) from the preset, the overrides and the tokenizer; validated."""
    from ..models import get_preset

    try:
        arch, mcfg = get_preset(cfg.preset, cfg.arch)
    except LmforgeError as e:
        raise ConfigError("preset", str(e)) from None
    changes = cfg.model.given()
    changes.setdefault("vocab_size", tokenizer_vocab)
    try:
        mcfg = dataclasses.replace(mcfg, **changes)
    except TypeError as e:
        raise ConfigError("model", f"{arch} has no such field ({e})") from None
    if mcfg.vocab_size < tokenizer_vocab:
        raise ConfigError(
            "model.vocab_size",
            f"{mcfg.vocab_size} is smaller than the tokenizer's {tokenizer_vocab} ids; "
            "drop --model.vocab-size to use the tokenizer's size",
        )
    check = getattr(mcfg, "validate", None)
    if callable(check):
        try:
            check()
        except ConfigError as e:
            raise ConfigError(f"model.{e.field}", str(e).split(": ", 1)[-1]) from None
    return arch, mcfg


def checked_seq_len(cfg: PretrainConfig, mcfg: Any) -> int:
    """The training sequence length: --seq-len, or the model's context; never above it."""
    seq_len = cfg.seq_len or mcfg.block_size
    if seq_len > mcfg.block_size:
        raise ConfigError(
            "seq_len",
            f"{seq_len} is above the model's context block_size={mcfg.block_size}; "
            f"lower --seq-len or raise --model.block-size",
        )
    return seq_len


def pretrain(cfg: PretrainConfig, *, resume: bool = False) -> TrainResult:
    """Train as `cfg` says (continuing RUN/latest with `resume`); returns the loop's result."""
    from ..data.shards import TokenShards

    out = Path(cfg.out)
    train_shards = TokenShards(cfg.data, "train")
    tok = train_shards.tokenizer()  # checks the tokenizer against the shards' hash
    start = start_stage(cfg, resume=resume, inputs=(("data", cfg.data),))
    with start:  # the run-folder lock; a failed new run leaves no half-made folder
        return _pretrain(cfg, start, out, train_shards, tok)


def _pretrain(cfg: PretrainConfig, start: StageStart, out: Path, train_shards, tok) -> TrainResult:
    if start.parent is not None:
        check_parent_tokenizer(start.parent, tok.hash, cfg.data)
        arch, mcfg = _parent_model_config(cfg, start.parent)
        cfg = dataclasses.replace(cfg, arch=arch)  # config.yaml says what is trained
    elif start.resume is not None and start.parent_info is not None:
        from ..models import read_model_meta

        # A run started --from another: its model is the one in its own checkpoint.
        arch, mcfg, _ = read_model_meta(start.resume.model_file)
    else:
        arch, mcfg = model_config_for(cfg, tok.vocab_size)
    if arch == "bert" and tok.mask_id is None:
        raise LmforgeError(
            f"{cfg.data}: the tokenizer has no <|mask|> token, which a masked LM needs; "
            "retrain it with `lmforge tokenizer train` and prepare the data again"
        )
    seq_len = checked_seq_len(cfg, mcfg)  # whichever way the model config came
    check_fits_memory(arch, mcfg, cfg.batch_size, seq_len, cfg.device)
    ckpt = start.resume
    if ckpt is not None:
        _check_resume_matches(ckpt, tok.hash, arch, mcfg)
        check_resume_lora(ckpt, cfg.lora)
    if start.complete is not None:
        step = start.resume.step
        print0(
            f"pretrain: {out} is complete (step {step}, {start.complete} reached); nothing to "
            "do — raise --max-steps (or --max-tokens / --max-time) to train further"
        )
        return start.completed_result()

    ctx = D.init_distributed(cfg.device, cfg.parallel)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _run(cfg, ctx, out, train_shards, tok, arch, mcfg, seq_len, start)
    finally:
        D.shutdown()


def _check_resume_matches(ckpt: Checkpoint, tok_hash: str, arch: str, mcfg: Any) -> None:
    state_file = ckpt.path / "trainer_state.json"
    saved = ckpt.state.get("tokenizer_hash")
    if saved is not None and saved != tok_hash:
        raise LmforgeError(
            f"{state_file}: the checkpoint was trained with tokenizer {saved}, but the data's "
            f"tokenizer is {tok_hash}; resume with the same --data"
        )
    saved_model = ckpt.state.get("model")
    if saved_model is not None:
        now = {"arch": arch, **dataclasses.asdict(mcfg)}
        diff = sorted(k for k in now if saved_model.get(k) != now[k])
        if diff:
            raise LmforgeError(
                f"{state_file}: the checkpoint's model differs in {', '.join(diff)} "
                f"(saved {', '.join(f'{k}={saved_model.get(k)!r}' for k in diff)}); "
                "resume with the run's own config.yaml"
            )


def _parent_model_config(cfg: PretrainConfig, parent: Any) -> tuple[str, Any]:
    """The parent's model config; of `--model.*` only dropout may change (shapes are fixed)."""
    given = cfg.model.given()
    fixed = sorted(k for k in given if k != "dropout")
    if fixed:
        raise ConfigError(
            f"model.{fixed[0]}",
            f"the model comes from --from {parent.path}; its shape cannot change (only "
            "--model.dropout may be set)",
        )
    mcfg = parent.model.config
    if "dropout" in given:
        mcfg = dataclasses.replace(mcfg, dropout=given["dropout"])
    return parent.arch, mcfg


def _run(cfg, ctx, out, train_shards, tok, arch, mcfg, seq_len, start: StageStart) -> TrainResult:
    from ..data.batches import BatchReader
    from ..eval.perplexity import bits_per_byte, mean_loss, perplexity

    ckpt = start.resume
    parent_sd = start.parent.model.state_dict() if start.parent is not None else None
    model, n_params = build_stage_model(arch, mcfg, cfg.seed, parent_sd, lora=cfg.lora)
    if ctx.is_main:
        write_run_files(out, cfg, tok)
        origin = ""
        if ckpt is not None:
            origin = f", resuming from {ckpt.path}"
        elif start.parent is not None:
            origin = f", from {start.parent.path} (step {start.parent.step})"
        print0(
            f"pretrain: {arch} {'' if start.parent_info else cfg.preset + ' '}"
            f"({n_params / 1e6:.2f}M parameters{trainable_note(model)}), vocab "
            f"{mcfg.vocab_size}, seq_len {seq_len}, batch {cfg.batch_size}×{cfg.grad_accum}"
            f"×{ctx.world_size}, device {ctx.device}" + origin
        )

    batches = BatchReader(
        train_shards,
        "train",
        cfg.batch_size,
        seq_len,
        seed=cfg.seed,
        rank=ctx.rank,
        world_size=ctx.world_size,
        mode="sequential" if arch == "rnn" and cfg.carry_state else "random",
    )
    val = BatchReader(
        cfg.data,
        "val",
        cfg.batch_size,
        seq_len,
        seed=cfg.seed,
        rank=ctx.rank,
        world_size=ctx.world_size,
    )
    val_split = val.shards.meta["splits"]["val"]
    val_tokens, val_bytes = int(val_split["tokens"]), int(val_split.get("bytes", 0))
    objective, eval_objective = objectives_for(arch, cfg, tok, mcfg.vocab_size, batches, ctx.rank)
    # Whole global steps only, so every rank runs the same number of forwards (FSDP's
    # all-gathers need that); a split smaller than one step is read as one partial step.
    n_eval = max(1, min(cfg.eval_batches, val.windows // val.rows))

    def evaluator(m: torch.nn.Module) -> dict[str, float]:
        loss, _ = mean_loss(
            m,
            eval_objective(),
            val.eval_batches(n_eval),
            device=ctx.device,
            all_reduce_sum=lambda t: D.all_reduce_sum(t, ctx),
        )
        res = {"val_loss": loss}
        if arch == "bert":  # a masked-LM loss: perplexity and bits/byte do not apply
            return res
        res["val_ppl"] = perplexity(loss)
        if val_bytes:
            res["val_bpb"] = bits_per_byte(loss, val_tokens, val_bytes)
        return res

    t0 = time.perf_counter()
    result = train(
        model,
        objective,
        batches,
        cfg,
        run_dir=out,
        ctx=ctx,
        evaluator=evaluator,
        resume=ckpt,
        extra_state={
            "stage": STAGE,
            "tokenizer_hash": tok.hash,
            "model": {"arch": arch, **dataclasses.asdict(mcfg)},
            **({"parent": start.parent_info} if start.parent_info else {}),
        },
        desc=f"pretrain {arch}",
    )
    if ctx.is_main:
        from ..eval.report import write_pretrain_report

        # An encoder does not generate text: no samples for BERT (see `lmforge fill-mask`).
        n_samples = 0 if arch == "bert" else cfg.samples
        sampler = model
        if ctx.parallel == "fsdp" and n_samples and result.checkpoint is not None:
            # Sharded weights need every rank for a forward: sample from the saved copy.
            from ..models import load_model

            sampler = load_model(result.checkpoint / "model.safetensors", device=ctx.device)
        samples = sample_texts(sampler, tok, n_samples, cfg.sample_tokens, seed=cfg.seed)
        write_pretrain_report(
            out,
            config=cfg,
            arch=arch,
            model_config=mcfg,
            n_params=n_params,
            result=result,
            samples=samples,
            data_meta=train_shards.meta,
            wall_s=time.perf_counter() - t0,
        )
        print0(
            f"pretrain: step {result.step}, train loss {result.train_loss:.4f}"
            + (f", val loss {result.val['val_loss']:.4f}" if "val_loss" in result.val else "")
            + (f" ({result.val['val_bpb']:.3f} bits/byte)" if "val_bpb" in result.val else "")
            + f"; run folder {out}"
        )
    return result


def objectives_for(
    arch: str, cfg: PretrainConfig, tok: Any, vocab_size: int, batches: Any, rank: int = 0
) -> tuple[Any, Any]:
    """(training objective, factory of a fresh evaluation objective) for `arch`.

    gpt/llama: next token. rnn: next token with the hidden state carried across
    the sequential reader's windows (``--carry-state``). bert: masked LM, masks
    seeded per rank; evaluation masks with a fixed seed, so every evaluation
    blanks the same tokens.
    """
    if arch == "bert":
        from ..train.masked_lm import MaskedLMObjective

        def mlm(seed: int) -> MaskedLMObjective:
            return MaskedLMObjective.for_tokenizer(tok, vocab_size, seed=seed)

        return mlm(cfg.seed + rank), lambda: mlm(rank)
    if arch == "rnn":
        from ..train.recurrent_lm import RecurrentLMObjective

        continues = (lambda: batches.continues_previous) if cfg.carry_state else None
        return RecurrentLMObjective(cfg.carry_state, continues), CausalLMObjective
    return CausalLMObjective(), CausalLMObjective


def sample_texts(
    model: torch.nn.Module, tok: Any, n: int, max_new_tokens: int, *, seed: int = 0
) -> list[str]:
    """`n` samples started from the document boundary (EOS), as the model saw documents begin."""
    if n <= 0:
        return []
    from ..inference.engine import generate
    from ..inference.sampling import SamplingConfig

    start = tok.eos_id if tok.eos_id is not None else 0
    was_training = model.training
    model.eval()
    # The caller's RNG is untouched: sampling draws from its own seeded generator.
    with torch.random.fork_rng(devices=[]):
        ids = generate(
            model,
            [[start]] * n,
            SamplingConfig(
                max_new_tokens=max_new_tokens,
                temperature=0.8,
                top_k=50,
                seed=seed,
                stop_token_ids=[start] if tok.eos_id is not None else [],
            ),
            pad_id=tok.pad_id if tok.pad_id is not None else 0,
        )
    model.train(was_training)
    return [tok.decode(row) for row in ids]


def config_from_run(run: str | Path) -> dict[str, Any]:
    """The saved config.yaml of a run folder, as a dict (for `--resume` without `--config`)."""
    from ..config import read_yaml

    return read_yaml(RunLayout(run).config)
