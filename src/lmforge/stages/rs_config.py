"""`RSConfig`: rejection-sampling fine-tuning of a policy run, scored by a checker or a reward model."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from ..common import ConfigError
from ..config import field_
from .policy import PolicyStageConfig

CHECKER_REWARDS = ("checker", "graded")  # the world's own scorers; anything else is a run folder


@dataclass
class RSConfig(PolicyStageConfig):
    """`lmforge rs --from POLICY_RUN --reward checker|graded|RM_RUN --prompts FILE --out RUN`."""

    n: int = field_(
        8,
        help="samples per prompt and iteration (they share one prefill); under torchrun, "
        "whose own flags take --n, write --num-samples",
        min=1,
        aliases=("--num-samples",),
    )
    iterations: int = field_(1, help="sample → select → fine-tune rounds", min=1)
    steps_per_iteration: int = field_(
        0,
        help="optimizer steps on each iteration's kept samples (0: about one pass over the "
        "prompts' conversations in packed rows, were every prompt kept); the run trains "
        "iterations × this steps",
        min=0,
    )
    min_reward: str = field_(
        "auto",
        help="a prompt whose best sample scores below this is not trained on: a number, none, "
        "or auto (checker: 1, only correct answers; graded: 0.55, any right answer; reward "
        "model: none)",
    )
    skip_solved: bool = field_(
        False,
        help="leave out the prompts the policy already solves: every one of the N samples "
        "reaches --min-reward (its own sure answers teach it little; the hard prompts' right "
        "answers are what it learns from); needs a min reward",
    )
    replay: list[str] = field_(
        default_factory=list,
        help="instruction files (as `lmforge sft --data` reads them) mixed into every "
        "iteration's kept answers, so that fine-tuning on the policy's own answers does not "
        "wear away what SFT taught",
    )
    replay_ratio: float = field_(
        1.0,
        help="replayed conversations per kept answer (a seeded draw per iteration, without "
        "replacement, at most the whole --replay set)",
        min=0.0,
    )
    temperature: float = field_(1.0, help="sampling temperature (0: greedy)", min=0.0)
    max_new_tokens: int = field_(128, help="most tokens per sample", min=1)
    sample_batch_size: int = field_(
        16, help="prompts generated together (each with its --n samples: rows = this × n)", min=1
    )
    seq_len: int = field_(0, help="packed training row length (0: the model's context)", min=0)
    # Redefined (TrainConfig's default, 1000 steps, would cut iterations short): the stage
    # runs iterations × steps_per_iteration steps, or stops sooner at this cap.
    max_steps: int | None = field_(
        None,
        help="stop after this many optimizer steps in all (none: iterations × "
        "steps_per_iteration, the whole run)",
        min=1,
    )

    def validate(self) -> None:
        # The step budget is iterations × steps_per_iteration, known once the prompts are
        # counted: the loop's "some budget must be set" rule holds by construction.
        PolicyStageConfig.validate(dataclasses.replace(self, max_steps=self.max_steps or 1))
        self.validate_sampling()
        floor = parse_min_reward(self.min_reward)  # a bad value fails here, before any file
        if self.skip_solved and floor is None:
            raise ConfigError(
                "skip_solved", "needs a --min-reward (a prompt is solved when every sample "
                "reaches it); give a number or auto with a checker reward"
            )  # fmt: skip


def parse_min_reward(spec: str) -> float | None | str:
    """`--min-reward`: a float, None for `none`, or "auto" (decided by the reward kind)."""
    s = str(spec).strip().lower()
    if s == "auto":
        return "auto"
    if s in ("none", "off", ""):
        return None
    try:
        value = float(s)
    except ValueError:
        raise ConfigError("min_reward", f"expected a number, none or auto, got {spec!r}") from None
    if math.isnan(value):
        raise ConfigError("min_reward", "must be a number, not nan")
    return value
