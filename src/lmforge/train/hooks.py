"""Loop hooks: code a stage runs inside the one loop, around its optimizer steps.

`train(..., hooks=[...])` calls, for each hook in order:

* `on_start(loop)` once, after the model is on its device and wrapped, the
  optimizer is built and a resumed run's state (the hook's own included) is
  loaded, before the first step: load a frozen reference model onto
  `loop.device` here.
* `before_step(loop)` at the start of every optimizer step, before its first
  batch is read: a rollout phase (PPO, rejection sampling) generates with the
  live model (`loop.model`) and hands the results to the batch source here.
  The model is in train mode: switch to eval() for generation and back.
* `after_step(loop, record)` after the update, the NaN guard and logging, and
  before that step's evaluation and checkpoint (so a checkpoint holds the
  hook's state after the step).

Every method is optional (subclass `LoopHook` for no-op defaults). A hook that
carries state between steps (a replay buffer, a counter, its own generator)
defines `state_dict() -> dict` (CPU tensors and plain values) and
`load_state_dict(dict)`; the loop saves it per process in the checkpoint's
hooks.pt and restores it on resume, before `on_start`, so a resumed run
continues exactly as an uninterrupted one.

Under torchrun every process runs its hooks; with FSDP the model's weights are
sharded, so a forward on `loop.model` needs all processes in step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import nn

if TYPE_CHECKING:
    from .config import TrainConfig
    from .distributed import DistContext


class LoopView:
    """What a hook sees of the loop: read-only, and live (`step` is the current count).

    `step` (optimizer steps done), `tokens_seen` (exact at log and checkpoint
    steps; on a GPU between them it may lag, see `train`), `device`, `model` (the
    user's module, unwrapped from DDP and torch.compile), `wrapped` (what the loop
    trains: DDP / FSDP / compiled), `ctx`, `rank`, `world_size`, `run_dir`
    (None when the run writes nothing), `cfg`, `resumed` (this run continued a
    checkpoint).
    """

    __slots__ = ("_state", "_model", "_wrapped", "_ctx", "_run_dir", "_cfg", "_resumed")

    def __init__(self, state, model, wrapped, ctx, run_dir, cfg, resumed: bool):
        self._state, self._model, self._wrapped = state, model, wrapped
        self._ctx, self._run_dir, self._cfg, self._resumed = ctx, run_dir, cfg, resumed

    @property
    def step(self) -> int:
        return self._state.step

    @property
    def tokens_seen(self) -> int:
        return self._state.tokens_seen

    @property
    def device(self) -> str:
        return self._ctx.device

    @property
    def model(self) -> nn.Module:
        return self._model

    @property
    def wrapped(self) -> nn.Module:
        return self._wrapped

    @property
    def ctx(self) -> DistContext:
        return self._ctx

    @property
    def rank(self) -> int:
        return self._ctx.rank

    @property
    def world_size(self) -> int:
        return self._ctx.world_size

    @property
    def run_dir(self) -> Path | None:
        return self._run_dir

    @property
    def cfg(self) -> TrainConfig:
        return self._cfg

    @property
    def resumed(self) -> bool:
        return self._resumed


@dataclass(frozen=True)
class StepRecord:
    """One optimizer step, as `after_step` receives it.

    The tensors are on the training device and detached: reading one (`.item()`)
    waits for the GPU, so read them only when needed. `loss_sum` and
    `n_tokens` are this process's (summed over its micro-batches); `n_tokens_global`
    is the step's count over all processes (the loss normaliser). `skipped` is
    True where the NaN guard skipped the update. `logged` is the metrics.jsonl
    record when this step wrote one, else None.
    """

    step: int
    lr: float
    loss_sum: torch.Tensor
    n_tokens: torch.Tensor
    n_tokens_global: torch.Tensor
    grad_norm: torch.Tensor
    skipped: torch.Tensor
    logged: dict[str, Any] | None = field(default=None)


@runtime_checkable
class Hook(Protocol):
    """The protocol (every method optional; see the module doc)."""

    def on_start(self, loop: LoopView) -> None: ...

    def before_step(self, loop: LoopView) -> None: ...

    def after_step(self, loop: LoopView, record: StepRecord) -> None: ...


class LoopHook:
    """A hook that does nothing: subclass it and override what you need."""

    def on_start(self, loop: LoopView) -> None:
        pass

    def before_step(self, loop: LoopView) -> None:
        pass

    def after_step(self, loop: LoopView, record: StepRecord) -> None:
        pass


def call_hooks(hooks, name: str, *args) -> None:
    for h in hooks:
        fn = getattr(h, name, None)
        if fn is not None:
            fn(*args)


def hooks_state(hooks) -> list[Any] | None:
    """Each hook's `state_dict()` (None for a stateless hook); None when no hook has state."""
    states = [h.state_dict() if hasattr(h, "state_dict") else None for h in hooks]
    return states if any(s is not None for s in states) else None


def load_hooks_state(hooks, states: list[Any], where: Path) -> None:
    from ..common import LmforgeError

    if len(states) != len(hooks):
        raise LmforgeError(
            f"{where}: holds the state of {len(states)} loop hook(s), this run has "
            f"{len(hooks)}; resume with the same stage options"
        )
    for h, s in zip(hooks, states, strict=True):
        if s is not None and hasattr(h, "load_state_dict"):
            h.load_state_dict(s)
