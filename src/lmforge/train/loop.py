"""The one training loop: every objective (LM, masked LM, SFT, reward, PPO) runs through here.

`train(model, objective, batches, cfg, run_dir=...)` does AdamW with decay groups,
warmup + cosine / linear / warmup-stable-decay, gradient accumulation, clipping,
bf16 autocast, optional torch.compile, DDP / FSDP2 under torchrun, periodic
evaluation, atomic checkpoints with exact resume, a NaN/inf guard, metrics.jsonl,
TensorBoard, PNG curves and a progress bar. Objectives and batch sources are the
protocols in `lmforge.train.objective`; stages add work around the steps with
hooks (`lmforge.train.hooks`).

Loss weighting: objectives return a loss *sum* and a token count per
micro-batch. The loop backpropagates each sum as it is, adds up the counts of
all micro-batches and processes (one all-reduce of a scalar), and scales the
gradients once before clipping so that the step's gradient is that of
(sum of every micro-batch's loss on every process) / (global token count):
every token weighs the same, whichever micro-batch or process it sat in.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..common import Interrupted, LmforgeError, move_to, progress, seed_everything
from ..models.weights import load_weights
from ..runs.checkpoint import Checkpoint, save_checkpoint
from . import distributed as D
from .config import TrainConfig
from .hooks import LoopView, StepRecord, call_hooks, hooks_state, load_hooks_state
from .metrics import MetricsLogger
from .objective import BatchSource, LossOutput, Objective
from .optim import build_optimizer, lr_at
from .precision import autocast, resolve_dtype
from .rng import get_rng_state, set_rng_state
from .signals import StopSignals

INTERRUPTED = "interrupted"  # stop_reason after SIGINT/SIGTERM (then `Interrupted` is raised)

Evaluator = Callable[[nn.Module], dict[str, float]]


@dataclass
class TrainResult:
    """What a finished (or stopped) run reached."""

    step: int
    tokens_seen: int
    elapsed_s: float
    train_loss: float | None
    val: dict[str, float] = field(default_factory=dict)
    best_val_loss: float | None = None
    tok_per_s: float | None = None
    stop_reason: str = "max_steps"
    checkpoint: Path | None = None
    nan_skipped: int = 0


@dataclass
class _State:
    """Counters that checkpoints carry (besides weights, optimizer, data and RNG)."""

    step: int = 0
    tokens_seen: int = 0
    elapsed_s: float = 0.0
    nan_skipped: int = 0
    nan_consecutive: int = 0
    best_val_loss: float | None = None
    warmup_progress: float | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(vars(self))

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> _State:
        return cls(**{k: d[k] for k in vars(cls()) if k in d})


def _weights_meta(inner: nn.Module, extra: dict[str, str] | None) -> dict[str, str]:
    """safetensors metadata: lmforge's arch and model config (self-describing), plus `extra`."""
    from ..models import weights_metadata

    try:
        meta = weights_metadata(inner)  # arch, config and head kind: the file rebuilds itself
    except (ValueError, AttributeError, LmforgeError):
        meta = {"format": "pt"}  # a module outside the model registry (tests): weights only
    return {**meta, **(extra or {})}


def _write_weights(model: nn.Module, ctx: D.DistContext, sd: dict, extra: dict[str, str] | None):
    """A function writing model.safetensors (rank 0) from the gathered state dict."""
    from ..models.weights import write_safetensors

    def write(path: Path) -> None:
        write_safetensors(sd, path, _weights_meta(D.unwrap(model), extra))

    return write


def _progress_fraction(st: _State, cfg: TrainConfig) -> float:
    """How far the run is, by whichever budget ends first."""
    parts = []
    if cfg.max_steps:
        parts.append(st.step / cfg.max_steps)
    if cfg.max_tokens:
        parts.append(st.tokens_seen / cfg.max_tokens)
    if cfg.max_time:
        parts.append(st.elapsed_s / cfg.max_time)
    return min(max(parts), 1.0)


def budget_spent(st: Any, cfg: TrainConfig) -> str | None:
    """Which budget (`max_steps`, `max_tokens`, `max_time`) a run at `st` has used up, if any.

    `st` has `step`, `tokens_seen` and `elapsed_s` (the loop's counters, or a
    checkpoint's trainer state read by `state_counters`).
    """
    if cfg.max_steps and st.step >= cfg.max_steps:
        return "max_steps"
    if cfg.max_tokens and st.tokens_seen >= cfg.max_tokens:
        return "max_tokens"
    if cfg.max_time and st.elapsed_s >= cfg.max_time:
        return "max_time"
    return None


def state_counters(trainer_state: dict[str, Any]) -> _State:
    """The loop's counters as a checkpoint's trainer_state.json recorded them."""
    return _State.from_json(trainer_state)


def _scale_and_clip(params: list[nn.Parameter], scale: torch.Tensor, max_norm: float):
    """Multiply the gradients by `scale`, clipped to `max_norm`, in one pass; the scaled norm.

    The norm is taken of the unscaled gradients and scaled as a number; then a
    single foreach multiply applies `scale * clip coefficient`, so weighting by
    the token count costs nothing over plain clipping. All on the device: no
    host sync. FSDP2's gradients are DTensors: the norm is their global norm,
    the multiply works on each process's shard.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return torch.zeros((), device=scale.device)
    norm = torch.nn.utils.get_total_norm(grads)
    if hasattr(norm, "full_tensor"):  # FSDP2: a DTensor
        norm = norm.full_tensor()
    norm = norm.float() * scale
    coef = scale * torch.clamp(max_norm / (norm + 1e-6), max=1.0)
    groups: dict[tuple, list[torch.Tensor]] = {}
    for g in grads:
        local = g.to_local() if hasattr(g, "to_local") else g
        groups.setdefault((local.device, local.dtype), []).append(local)
    for (dev, _), group in groups.items():
        torch._foreach_mul_(group, coef.to(dev))
    return norm


def train(
    model: nn.Module,
    objective: Objective,
    batches: BatchSource,
    cfg: TrainConfig,
    *,
    run_dir: str | Path | None = None,
    ctx: D.DistContext | None = None,
    evaluator: Evaluator | None = None,
    resume: Checkpoint | None = None,
    weights_metadata: dict[str, str] | None = None,
    extra_state: dict[str, Any] | None = None,
    hooks: Sequence[Any] = (),
    desc: str = "train",
) -> TrainResult:
    """Train `model` on `objective` over `batches` as `cfg` says; returns where it ended.

    `model` is a plain module on the CPU or already on the device (not yet wrapped);
    `evaluator(model) -> {"val_loss": ..., ...}` runs under no_grad, eval mode and
    autocast every `cfg.eval_every` steps and at the end. `run_dir` receives
    checkpoints and metrics (None: train without writing anything). `resume` is
    a verified checkpoint (`checkpoint.find_resume_checkpoint`). `weights_metadata`
    goes into every model.safetensors; `extra_state` into trainer_state.json.
    `hooks` run around every step (`lmforge.train.hooks`); their state is
    checkpointed.

    Tokens: `tokens_seen`, `tok_per_s` and the `max_tokens` budget count the
    objective's `n_tokens` over all processes (trained tokens: not padding, not
    masked targets), of every step including NaN-skipped ones. On a CPU they are
    read every step; on a GPU (fused AdamW) the counts stay on the device and are
    read at log and checkpoint steps, except under a `max_tokens` budget, which
    reads them every step (one host sync per step) to stop exactly.
    Raises LmforgeError when the NaN guard stops the run (after saving).
    """
    ctx = ctx or D.init_distributed(cfg.device, cfg.parallel)
    device = ctx.device
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.startswith("cuda"):
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    amp_dtype = resolve_dtype(cfg.dtype, device, model)
    run = Path(run_dir) if run_dir is not None else None
    writes = run is not None and ctx.is_main
    hooks = list(hooks)

    model.to(device)
    st = _State()
    if resume is not None:
        load_weights(D.unwrap(model), resume.model_file)  # the one checked weight loader
        st = _State.from_json(resume.state)

    # --- wrap: compile, then DDP (or shard with FSDP2, then compile) ----------------
    if cfg.compile and ctx.parallel != "fsdp":
        model = torch.compile(model)
    eval_model = model
    model = D.wrap_model(model, ctx)
    if ctx.parallel == "fsdp":
        if cfg.compile:
            model = torch.compile(model)
        eval_model = model
    optimizer = build_optimizer(model, cfg.lr, cfg.weight_decay, cfg.betas, cfg.eps)
    fused = bool(optimizer.defaults.get("fused"))

    # --- restore optimizer, data position, objective and hook state and RNG, or seed ---
    if resume is not None:
        _restore(resume, model, optimizer, objective, batches, hooks, ctx)
    else:
        # Per-rank streams: dropout differs across processes, as it would across a batch.
        seed_everything(cfg.seed + ctx.rank)

    metrics = MetricsLogger(run, enabled=writes, resume_step=st.step) if run else None
    params = [p for p in model.parameters() if p.requires_grad]
    clip = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
    # On a GPU a host sync stalls the launch queue, so the NaN counters and token
    # counts (kept on the device) are read only at log steps there; on a CPU
    # reading them is free.
    check_every = 1 if (device == "cpu" or not fused) else cfg.log_every
    count_every = 1 if (check_every == 1 or cfg.max_tokens) else cfg.log_every
    bad_run = torch.full((), float(st.nan_consecutive), device=device)  # in a row, now
    bad_total = torch.full((), float(st.nan_skipped), device=device)
    # This process's sums over the logging window: loss and tokens of the finite
    # steps, tokens of all steps, and each metric × its tokens.
    win_loss = torch.zeros((), dtype=torch.float64, device=device)
    win_n_good = torch.zeros((), dtype=torch.int64, device=device)
    win_n_all = torch.zeros((), dtype=torch.int64, device=device)
    win_metrics: dict[str, torch.Tensor] = {}
    pending_tokens: torch.Tensor | None = None  # global tokens not yet added to st
    win_tokens0, win_t0, win_steps = st.tokens_seen, time.perf_counter(), 0
    last_norm = torch.zeros((), device=device)
    last_loss: float | None = None
    last_val: dict[str, float] = {}
    tok_per_s: float | None = None
    t_start = time.perf_counter() - st.elapsed_s
    view = LoopView(st, D.unwrap(model), model, ctx, run, cfg, resume is not None)

    def flush_tokens() -> None:
        nonlocal pending_tokens
        if pending_tokens is not None:
            st.tokens_seen += int(pending_tokens.item())
            pending_tokens = None

    def save_now() -> Path:
        """Checkpoint everything resume needs at the current step (rank 0 writes)."""
        flush_tokens()
        return _save(
            run,
            st,
            model,
            optimizer,
            objective,
            batches,
            hooks,
            ctx,
            cfg,
            weights_metadata,
            extra_state,
        )

    call_hooks(hooks, "on_start", view)
    bar = progress(total=cfg.max_steps, desc=desc, unit="step")
    bar.update(st.step)
    stop = budget_spent(st, cfg)
    # A collective per step would cost a host sync on a GPU: ranks agree on a signal
    # at log steps when distributed, every step otherwise.
    signal_every = cfg.log_every if ctx.distributed else 1
    signals = StopSignals()
    model.train()
    try:
        signals.__enter__()
        while stop is None:
            call_hooks(hooks, "before_step", view)
            # --- one optimizer step ---------------------------------------------------
            frac = _progress_fraction(st, cfg)
            if st.step >= cfg.warmup and st.warmup_progress is None:
                st.warmup_progress = frac
            lr = lr_at(
                st.step,
                frac,
                lr=cfg.lr,
                min_lr=cfg.min_lr,
                warmup=cfg.warmup,
                schedule=cfg.schedule,
                decay_frac=cfg.decay_frac,
                warmup_progress=st.warmup_progress or 0.0,
            )
            for g in optimizer.param_groups:
                g["lr"] = lr
            step_loss = step_n = None  # this process's loss sum and its tokens
            for micro in range(cfg.grad_accum):
                batch = move_to(batches.next_batch(), device)
                with D.grad_sync(model, ctx, micro == cfg.grad_accum - 1):
                    with autocast(device, amp_dtype):
                        out = objective.compute_loss(model, batch)
                    if not isinstance(out, LossOutput):
                        raise TypeError(
                            f"{type(objective).__name__}.compute_loss must return a "
                            f"LossOutput, not {type(out).__name__}"
                        )
                    out.loss_sum.backward()
                loss, n = out.loss_sum.detach().float(), out.n_tokens
                if not isinstance(n, torch.Tensor):  # a fill, not a copy: no host sync
                    n = torch.full((), n, dtype=torch.int64, device=device)
                step_loss = loss if step_loss is None else step_loss + loss
                step_n = n if step_n is None else step_n + n
                for k, v in out.metrics.items():
                    acc = win_metrics.get(k)
                    term = v.detach().double() * out.n_tokens
                    win_metrics[k] = term if acc is None else acc + term
            # DDP and FSDP average the gradients over processes; the step's gradient is
            # the sum over processes / the global count: scale by world_size / count.
            n_global = D.all_reduce_sum(step_n.clone(), ctx) if ctx.distributed else step_n
            scale = ctx.world_size / n_global.clamp(min=1)  # float32
            norm = _scale_and_clip(params, scale, clip)
            bad = ~(torch.isfinite(norm) & torch.isfinite(step_loss))
            if fused:
                # Fused AdamW skips the update (and its step count) where found_inf is 1,
                # without a host sync: the same mechanism torch's GradScaler uses.
                optimizer.found_inf = bad.float()
                optimizer.step()
                del optimizer.found_inf
            elif not bad.item():
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            bad_run = (bad_run + 1) * bad
            bad_total += bad
            win_loss += torch.where(bad, 0.0, step_loss.double())
            win_n_good += torch.where(bad, 0, step_n)
            win_n_all += step_n
            last_norm = norm.detach()
            pending_tokens = n_global if pending_tokens is None else pending_tokens + n_global
            st.step += 1
            if st.step % count_every == 0:
                flush_tokens()
            win_steps += 1
            now = time.perf_counter() - t_start
            if cfg.max_time:
                # Every rank must see the same clock, or their schedules would differ.
                now = _broadcast_float(now, ctx)
            st.elapsed_s = now
            bar.update(1)

            # --- NaN guard ------------------------------------------------------------
            if st.step % check_every == 0 and bad_run.item() >= cfg.nan_guard_patience:
                st.nan_consecutive = int(bad_run.item())
                st.nan_skipped = int(bad_total.item())
                path = None
                if run is not None:
                    path = save_now()
                where = f"; saved {path}" if path else ""
                raise LmforgeError(
                    f"training stopped at step {st.step}: loss or gradients were NaN/inf for "
                    f"{st.nan_consecutive} steps in a row (each was skipped){where}; lower --lr "
                    "or raise --warmup, then --resume"
                )

            stop = budget_spent(st, cfg)
            if stop is None and st.step % signal_every == 0 and _signalled(signals, ctx):
                stop = INTERRUPTED

            # --- log ------------------------------------------------------------------
            rec = None
            if st.step % cfg.log_every == 0 or stop:
                names = list(win_metrics)
                counts = [win_n_good.double(), win_n_all.double()]
                summed = torch.stack([win_loss, *counts, *(win_metrics[k] for k in names)])
                summed = D.all_reduce_sum(summed, ctx)
                local = torch.stack([bad_total, last_norm.float(), bad_run]).double()
                pend = [] if pending_tokens is None else [pending_tokens.double()]
                vals = torch.cat([summed, local, *(p.reshape(1) for p in pend)]).tolist()
                w_loss, w_n, w_n_all = vals[:3]  # loss and tokens of finite steps, all tokens
                metric_sums = vals[3 : 3 + len(names)]
                n_bad, g_norm, in_a_row = vals[3 + len(names) : 6 + len(names)]
                if pend:
                    st.tokens_seen += int(vals[-1])
                    pending_tokens = None
                dt = time.perf_counter() - win_t0
                win_tokens = st.tokens_seen - win_tokens0
                tok_per_s = win_tokens / dt if dt > 0 else None
                last_loss = w_loss / w_n if w_n else float("nan")
                rec = {
                    "step": st.step,
                    "loss": last_loss,
                    "lr": lr,
                    "tokens_seen": st.tokens_seen,
                    "tok_per_s": tok_per_s,
                    "grad_norm": g_norm,
                    "elapsed_s": round(st.elapsed_s, 3),
                    "nan_skipped": int(n_bad),
                }
                for k, v in zip(names, metric_sums, strict=True):
                    rec[f"train_{k}"] = v / w_n_all if w_n_all else float("nan")
                st.nan_skipped = int(n_bad)
                st.nan_consecutive = int(in_a_row)
                if metrics:
                    metrics.log(rec)
                # Without a step budget the bar's total is an estimate (for its ETA).
                if cfg.max_steps is None and cfg.max_tokens and win_tokens > 0:
                    per_step = win_tokens / win_steps
                    bar.total = st.step + math.ceil((cfg.max_tokens - st.tokens_seen) / per_step)
                elif cfg.max_steps is None and cfg.max_time and dt > 0:
                    steps_per_s = win_steps / dt
                    bar.total = st.step + int((cfg.max_time - st.elapsed_s) * steps_per_s)
                # What n_tokens counts (tokens; pairs for the preference objectives).
                unit = f"{getattr(objective, 'count_unit', 'tok')}_s"
                bar.set_postfix(**{"loss": f"{last_loss:.4f}", unit: f"{tok_per_s or 0:,.0f}"})
                for t in (win_loss, win_n_good, win_n_all):
                    t.zero_()
                win_metrics = {}
                win_tokens0, win_steps, win_t0 = st.tokens_seen, 0, time.perf_counter()

            if hooks:
                record = StepRecord(st.step, lr, step_loss, step_n, n_global, last_norm, bad, rec)
                call_hooks(hooks, "after_step", view, record)

            # --- evaluate -------------------------------------------------------------
            due_eval = cfg.eval_every and st.step % cfg.eval_every == 0
            if evaluator is not None and (due_eval or (stop and stop != INTERRUPTED)):
                last_val = _evaluate(evaluator, eval_model, device, amp_dtype)
                vl = last_val.get("val_loss")
                if vl is not None and math.isfinite(vl):
                    if st.best_val_loss is None or vl < st.best_val_loss:
                        st.best_val_loss = vl
                if metrics:
                    metrics.log({"step": st.step, **last_val})
                    metrics.plot()
                # Evaluation time is not training time for tokens/s.
                win_t0 = time.perf_counter()

            # --- checkpoint -----------------------------------------------------------
            due_save = cfg.save_every and st.step % cfg.save_every == 0
            if run is not None and (due_save or stop):
                save_now()
                win_t0 = time.perf_counter()
        flush_tokens()
    finally:
        signals.__exit__()
        bar.close()
        if metrics:
            metrics.plot()
            metrics.close()

    if stop == INTERRUPTED:
        saved = f"; saved {run / 'checkpoints' / f'step_{st.step}'}" if run is not None else ""
        raise Interrupted(f"{signals.received} at step {st.step}{saved}")
    return TrainResult(
        step=st.step,
        tokens_seen=st.tokens_seen,
        elapsed_s=st.elapsed_s,
        train_loss=last_loss,
        val=last_val,
        best_val_loss=st.best_val_loss,
        tok_per_s=tok_per_s,
        stop_reason=stop or "max_steps",
        checkpoint=(run / "checkpoints" / f"step_{st.step}") if run else None,
        nan_skipped=st.nan_skipped,
    )


def _signalled(signals: StopSignals, ctx: D.DistContext) -> bool:
    """Whether any process got SIGINT/SIGTERM (all must stop at the same step)."""
    got = signals.received is not None
    if not ctx.distributed:
        return got
    flag = torch.tensor([1.0 if got else 0.0], device=ctx.device)
    return bool(D.all_reduce_sum(flag, ctx).item() > 0)


def _broadcast_float(x: float, ctx: D.DistContext) -> float:
    if not ctx.distributed:
        return x
    import torch.distributed as dist

    t = torch.tensor([x], dtype=torch.float64, device=ctx.device)
    dist.broadcast(t, src=0)
    return float(t.item())


def _evaluate(evaluator: Evaluator, model: nn.Module, device: str, amp_dtype) -> dict[str, float]:
    model.eval()
    try:
        with torch.no_grad(), autocast(device, amp_dtype):
            return {k: float(v) for k, v in evaluator(model).items()}
    finally:
        model.train()


def _save(run, st, model, optimizer, objective, batches, hooks, ctx, cfg, meta, extra) -> Path:
    """Checkpoint the current step (every rank calls; rank 0 writes)."""
    model_sd, opt_sd = D.full_state_dicts(model, optimizer, ctx)
    rng = D.gather_objects(get_rng_state(), ctx)
    data = D.gather_objects(batches.state_dict(), ctx)
    obj = objective.state_dict() if hasattr(objective, "state_dict") else None
    objs = D.gather_objects(obj, ctx) if obj is not None else None
    hk = hooks_state(hooks)
    hks = D.gather_objects(hk, ctx) if hk is not None else None
    path = run / "checkpoints" / f"step_{st.step}"
    if ctx.is_main:
        trainer_state = {
            **(extra or {}),
            **st.to_json(),
            "world_size": ctx.world_size,
            "data": data,
            "rng": rng,
        }
        path = save_checkpoint(
            run,
            st.step,
            write_weights=_write_weights(model, ctx, model_sd, meta or {}),
            optimizer_state=opt_sd,
            trainer_state=trainer_state,
            objective_state={"ranks": objs} if objs is not None else None,
            hooks_state={"ranks": hks} if hks is not None else None,
            keep_last=cfg.keep_last,
        )
    D.barrier(ctx)
    return path


def _restore(
    ckpt: Checkpoint,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    objective: Objective,
    batches: BatchSource,
    hooks: list[Any],
    ctx: D.DistContext,
) -> None:
    """Load optimizer, data position, objective and hook state and RNG from `ckpt` (this rank)."""
    state = ckpt.state
    saved_world = int(state.get("world_size", 1))
    if saved_world != ctx.world_size:
        raise LmforgeError(
            f"{ckpt.path / 'trainer_state.json'}: written by {saved_world} process(es), this run "
            f"has {ctx.world_size}; resume with the same --nproc_per_node for the same data order"
        )
    try:
        D.load_optimizer_state(model, optimizer, ckpt.optimizer_state(), ctx)
    except (ValueError, KeyError, RuntimeError) as e:
        raise LmforgeError(
            f"{ckpt.path / 'optimizer.pt'}: does not fit this model's parameters ({e})"
        ) from None
    batches.load_state_dict(state["data"][ctx.rank])
    obj_state = ckpt.objective_state()
    if obj_state is not None and hasattr(objective, "load_state_dict"):
        objective.load_state_dict(obj_state["ranks"][ctx.rank])
    hk_state = ckpt.hooks_state()
    if hk_state is not None:
        load_hooks_state(hooks, hk_state["ranks"][ctx.rank], ckpt.path / "hooks.pt")
    set_rng_state(state["rng"][ctx.rank])
