"""`TrainConfig`: the one loop's settings.

Every stage config (pretrain, SFT, reward model, PPO, ...) subclasses `TrainConfig`
so that the loop's flags (`--lr`, `--batch-size`, `--max-steps`, ...) mean the same
thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..common import ConfigError
from ..config import field_

SCHEDULES = ("cosine", "linear", "wsd", "constant")
DTYPES = ("auto", "fp32", "bf16")
PARALLEL = ("auto", "none", "ddp", "fsdp")


@dataclass
class TrainConfig:
    """Settings of the one training loop (`lmforge.train.loop.train`)."""

    batch_size: int = field_(16, help="sequences per micro-batch per process", min=1)
    grad_accum: int = field_(1, help="micro-batches accumulated per optimizer step", min=1)
    max_steps: int | None = field_(1000, help="optimizer steps to run (none: no step limit)", min=1)
    max_tokens: int | None = field_(
        None, help="stop after this many training tokens (all processes together)", min=1
    )
    max_time: float | None = field_(
        None, help="wall-time budget in seconds (the schedule then runs on elapsed time)", min=1
    )
    lr: float = field_(1e-3, help="peak learning rate", min=0.0)
    min_lr: float = field_(1e-4, help="learning rate at the end of the decay", min=0.0)
    warmup: int = field_(100, help="linear warmup steps", min=0)
    schedule: str = field_("cosine", help="learning-rate schedule after warmup", choices=SCHEDULES)
    decay_frac: float = field_(
        0.2, help="wsd: fraction of the run spent in the final decay", min=0.0, max=1.0
    )
    weight_decay: float = field_(0.1, help="AdamW weight decay (matrices only)", min=0.0)
    betas: tuple[float, float] = field_((0.9, 0.95), help="AdamW betas")
    eps: float = field_(1e-8, help="AdamW epsilon", min=0.0)
    grad_clip: float = field_(1.0, help="clip the global gradient norm (0: off)", min=0.0)
    dtype: str = field_(
        "auto", help="compute dtype: auto picks bf16 autocast where it is fast", choices=DTYPES
    )
    compile: bool = field_(False, help="torch.compile the model")
    eval_every: int = field_(200, help="evaluate every N steps (0: only at the end)", min=0)
    eval_batches: int = field_(20, help="validation batches per evaluation", min=1)
    save_every: int = field_(500, help="checkpoint every N steps (0: only at the end)", min=0)
    keep_last: int = field_(2, help="checkpoints to keep (older ones are deleted)", min=1)
    log_every: int = field_(10, help="write metrics every N steps", min=1)
    seed: int = field_(1337, help="random seed (data order, init, dropout)")
    device: str = field_("auto", help="auto, cpu, cuda, cuda:N or mps")
    threads: int = field_(0, help="CPU threads for torch (0: torch's default)", min=0)
    nan_guard_patience: int = field_(
        5, help="stop after this many non-finite steps in a row (each is skipped)", min=1
    )
    parallel: str = field_(
        "auto", help="auto: DDP under torchrun; fsdp shards weights (FSDP2)", choices=PARALLEL
    )

    def validate(self) -> None:
        if self.max_steps is None and self.max_tokens is None and self.max_time is None:
            raise ConfigError("max_steps", "set at least one of max_steps, max_tokens, max_time")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError("betas", f"expected two numbers in [0, 1), got {list(self.betas)}")
        if self.min_lr > self.lr:
            raise ConfigError("min_lr", f"{self.min_lr} is above lr {self.lr}")
