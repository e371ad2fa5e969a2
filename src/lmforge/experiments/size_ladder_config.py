"""LadderConfig: the options of `lmforge eval ladder` (light: no torch, for fast --help)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..common import ConfigError
from ..config import field_

# The rungs: name -> (n_layer, d_model, n_head) of a LLaMA with tied embeddings and
# SwiGLU at 8/3 d (rounded to 8). Parameters at the world tokenizer's 2048 ids:
# 0.2m 0.23M, 1m 1.05M, 5m 5.3M, 15m 14.9M (embedding included, counted once).
SIZES: dict[str, tuple[int, int, int]] = {
    "0.2m": (2, 64, 2),
    "0.4m": (2, 96, 4),
    "1m": (4, 128, 4),
    "2m": (4, 192, 4),
    "5m": (6, 256, 4),
    "15m": (8, 384, 6),
}
DEFAULT_SIZES = ("0.2m", "1m", "5m", "15m")
EVALS = ("lambada", "trivia", "sentiment")
_SPEC = re.compile(r"^(\d+)x(\d+)x(\d+)$")


def parse_size(name: str) -> tuple[int, int, int]:
    """(n_layer, d_model, n_head) of a named rung or of a ``LAYERSxWIDTHxHEADS`` spec."""
    if name in SIZES:
        return SIZES[name]
    m = _SPEC.match(name)
    if not m:
        raise ConfigError(
            "sizes",
            f"unknown size {name!r}; use one of {', '.join(SIZES)} or LAYERSxWIDTHxHEADS "
            "(e.g. 2x64x2)",
        )
    n_layer, d_model, n_head = (int(x) for x in m.groups())
    if min(n_layer, d_model, n_head) < 1 or d_model % n_head or (d_model // n_head) % 2:
        raise ConfigError(
            "sizes",
            f"{name}: the width must split into heads of an even size (RoPE), e.g. 2x64x2",
        )
    return n_layer, d_model, n_head


@dataclass
class LadderConfig:
    """Pretrain a ladder of model sizes on the world, then zero- vs few-shot accuracy of each."""

    world: str = field_("", help="world folder (made by `lmforge world`)")
    out: str = field_("", help="folder for the tokenizer, data, runs, ladder.json, report, plots")
    sizes: list[str] = field_(
        default_factory=lambda: list(DEFAULT_SIZES),
        help=f"rungs, smallest first: {', '.join(SIZES)} or LAYERSxWIDTHxHEADS",
    )
    seconds_per_model: float = field_(
        150.0, help="pretraining wall time per rung, seconds (the budget rule)", min=1.0
    )
    steps_per_model: int | None = field_(
        None, help="also stop each rung after this many steps (none: time only)", min=1
    )
    evals: list[str] = field_(
        default_factory=lambda: list(EVALS), help=f"evaluations per rung, among {', '.join(EVALS)}"
    )
    k: list[int] = field_(
        default_factory=lambda: [0, 1, 4], help="shown examples per prompt (0 = zero-shot)"
    )
    seeds: int = field_(2, help="example draws per k > 0", min=1)
    limit: int = field_(80, help="test items per evaluation (a fixed subset; 0: all)", min=0)
    vocab_size: int = field_(2048, help="BPE tokenizer size, trained once on the world", min=260)
    context: int = field_(512, help="context and training sequence length (tokens)", min=32)
    batch_size: int = field_(8, help="training sequences per step", min=1)
    lr: float = field_(2e-3, help="peak learning rate (the same for every rung)", min=0.0)
    warmup: int = field_(5, help="linear warmup steps (a large rung gets few steps)", min=0)
    save_every: int = field_(
        100, help="checkpoint every N steps (what an interrupted rung resumes from)", min=1
    )
    threads: int = field_(
        1, help="torch CPU threads (recorded); more than the free cores makes OpenMP spin", min=1
    )
    device: str = field_("cpu", help="device for training and evaluation")
    seed: int = field_(1337, help="seed of data order, initial weights and example draws")
    resume: bool = field_(False, help="continue the ladder in --out (finished rungs are kept)")
    force: bool = field_(False, help="replace an existing ladder in --out")

    def validate(self) -> None:
        if not self.world:
            raise ConfigError("world", "required: a world folder (made by `lmforge world`)")
        if not self.out:
            raise ConfigError("out", "required: the folder to write the ladder to")
        if not self.sizes:
            raise ConfigError("sizes", "give at least one size")
        for name in self.sizes:
            parse_size(name)
        if len(set(self.sizes)) != len(self.sizes):
            raise ConfigError("sizes", f"lists a size twice: {', '.join(self.sizes)}")
        unknown = [e for e in self.evals if e not in EVALS]
        if unknown:
            raise ConfigError("evals", f"unknown {unknown[0]!r}; choose among {', '.join(EVALS)}")
        if not self.evals:
            raise ConfigError("evals", f"give at least one of {', '.join(EVALS)}")
        if not self.k or any(k < 0 for k in self.k):
            raise ConfigError("k", f"give k values of 0 or more, got {self.k}")
        if self.resume and self.force:
            raise ConfigError(
                "resume", "--resume continues the ladder, --force replaces it: not both"
            )
