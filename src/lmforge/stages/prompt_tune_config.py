"""`PromptTuneConfig`: prompt tuning (soft tokens on a frozen model) of a classification task."""

from __future__ import annotations

from dataclasses import dataclass

from ..common import ConfigError
from ..config import field_
from ..models.soft_prompt import INITS
from .base import StageConfig


@dataclass
class PromptTuneConfig(StageConfig):
    """`lmforge prompt-tune --from RUN --task NAME [--world DIR] --out RUN2`."""

    task: str = field_(
        "", help="classification task: a builtin name (sentiment, topic: need --world; sst2, "
        "agnews, trec, rte, cb) or a task file (lmforge.prompting.tasks.load_task)",
    )  # fmt: skip
    world: str = field_("", help="world folder for the world's task sets (sentiment, topic)")
    fmt: str = field_("0", help="prompt format of the task: its index or name")
    full: bool = field_(
        False, help="train every weight of the model (full fine-tuning on the task) instead of "
        "only the soft tokens; with --n-before 0 --n-after 0 for plain fine-tuning",
    )  # fmt: skip
    n_before: int = field_(10, help="soft tokens before the input", min=0)
    n_after: int = field_(10, help="soft tokens after the input (before the label)", min=0)
    init: str = field_(
        "vocab", help="soft-token init: sampled vocabulary embeddings, random (the table's "
        "scale), or the label words' embeddings", choices=INITS,
    )  # fmt: skip
    seq_len: int = field_(0, help="longest row in tokens, soft prompt and label included "
                          "(0: the model's context)", min=0)  # fmt: skip
    test_limit: int = field_(0, help="test examples scored at the end (0: all)", min=0)
    # Prompt tuning moves a few thousand numbers: a higher rate than full training, no decay
    # (it would pull the soft tokens towards zero, away from the embeddings' scale).
    lr: float = field_(3e-2, help="peak learning rate", min=0.0)
    min_lr: float = field_(3e-3, help="learning rate at the end of the decay", min=0.0)
    weight_decay: float = field_(0.0, help="AdamW weight decay of the soft tokens", min=0.0)
    warmup: int = field_(10, help="linear warmup steps", min=0)
    batch_size: int = field_(8, help="examples per micro-batch per process", min=1)
    max_steps: int | None = field_(200, help="optimizer steps to run (none: no step limit)",
                                   min=1)  # fmt: skip
    eval_every: int = field_(50, help="test loss every N steps (0: only at the end)", min=0)
    save_every: int = field_(100, help="checkpoint every N steps (0: only at the end)", min=0)

    def validate(self) -> None:
        super().validate()
        if not self.task:
            raise ConfigError("task", "required: the classification task to tune for")
        if self.n_before + self.n_after < 1 and not self.lora and not self.full:
            raise ConfigError(
                "n_before", "nothing to train: give soft tokens (--n-before/--n-after), "
                "--lora SPEC or --full",
            )  # fmt: skip
        if self.lora and self.full:
            raise ConfigError("full", "--full trains every weight; drop --lora (or --full)")
