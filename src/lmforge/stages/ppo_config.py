"""`PPOConfig`: RL fine-tuning of a policy run with PPO (a value head, GAE) or GRPO (groups)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..common import ConfigError
from ..config import field_
from ..train.config import SCHEDULES
from .policy import PolicyStageConfig

ALGORITHMS = ("ppo", "grpo")
KL_PENALTY = ("k1", "k3")


@dataclass
class PPOConfig(PolicyStageConfig):
    """`lmforge ppo|grpo --from SFT_RUN --reward RM|checker|graded|module:fn --prompts FILE --out RUN`."""

    algorithm: str = field_(
        "ppo", help="ppo: value head + GAE; grpo: group-normalised rewards, no critic",
        choices=ALGORITHMS,
    )  # fmt: skip
    iterations: int = field_(20, help="rollout → update rounds", min=1)
    episodes: int = field_(
        16,
        help="sampled answers per iteration and process (grpo: prompts × --n); the rollout batch",
        min=1,
    )
    n: int = field_(
        1,
        help="answers per prompt in a rollout (grpo's group size; ppo: usually 1); under "
        "torchrun write --num-samples",
        min=1,
        aliases=("--num-samples",),
    )
    share_prompt: bool = field_(
        True, help="GPT/LLaMA: answers to the same prompt (--n > 1) run it once, as branches "
        "of one row, in scoring and updates (the same numbers from fewer tokens)",
    )  # fmt: skip
    ppo_epochs: int = field_(4, help="passes over each rollout batch", min=1)
    minibatches: int = field_(
        2, help="optimizer steps per pass (episodes / minibatches rows each)", min=1
    )
    clip: float = field_(0.2, help="ε of the clipped surrogate (> 0)")
    value_clip: float = field_(
        0.2, help="ppo: clip of the value loss around the old values (0: off)", min=0.0
    )
    value_coef: float = field_(0.1, help="ppo: weight of the value loss", min=0.0)
    entropy_coef: float = field_(0.0, help="weight of the entropy bonus", min=0.0)
    gamma: float = field_(1.0, help="ppo: discount γ", min=0.0, max=1.0)
    lam: float = field_(0.95, help="ppo: GAE λ", min=0.0, max=1.0)
    beta: float = field_(
        0.05,
        help="KL coefficient β (>= 0): ppo: the per-token penalty −β·KL in the reward; grpo: "
        "the loss term β·KL(π‖π_ref)",
    )
    kl_target: float = field_(
        0.0,
        help="ppo: adapt β so the rollout's KL (nats per answer) tracks this (0: fixed β)",
        min=0.0,
    )
    kl_horizon: int = field_(10000, help="ppo: the adaptive β's horizon in episodes", min=1)
    kl_penalty: str = field_(
        "k1", help="ppo: the per-token KL estimate in the reward", choices=KL_PENALTY
    )
    early_stop_kl: float = field_(
        0.0,
        help="end an iteration's updates once a step's mean approximate KL to the rollout "
        "policy exceeds 1.5 × this (0: off)",
        min=0.0,
    )
    whiten_rewards: bool = field_(
        False, help="ppo: scale each rollout's scores to unit variance (not shifted)"
    )
    scale_group_rewards: bool = field_(
        True, help="grpo: divide advantages by the group's standard deviation"
    )
    missing_eos_penalty: float = field_(
        0.0,
        help="subtracted from the score of an answer cut by --max-new-tokens (it never ended)",
        min=0.0,
    )
    max_reward_errors: int = field_(
        10,
        help="stop once the reward function has failed (raised or not finite) on more "
        "samples than this; each failed sample is skipped and counted",
        min=0,
    )
    temperature: float = field_(1.0, help="rollout sampling temperature (> 0)")
    max_new_tokens: int = field_(64, help="most tokens per answer", min=1)
    # Redefined from TrainConfig: PPO's step plan is iterations × epochs × minibatches.
    max_steps: int | None = field_(
        None,
        help="stop after this many optimizer steps (none: iterations × ppo_epochs × minibatches)",
        min=1,
    )
    lr: float = field_(1e-5, help="peak learning rate", min=0.0)
    min_lr: float = field_(1e-5, help="learning rate at the end of the decay", min=0.0)
    warmup: int = field_(0, help="linear warmup steps", min=0)
    schedule: str = field_(
        "constant", help="learning-rate schedule after warmup", choices=SCHEDULES
    )
    weight_decay: float = field_(0.0, help="AdamW weight decay (matrices only)", min=0.0)
    eval_every: int = field_(0, help="unused by PPO (its measure is the rollout's reward)", min=0)
    save_every: int = field_(
        50, help="checkpoint every N optimizer steps (0: only at the end)", min=0
    )
    log_every: int = field_(1, help="write metrics every N steps", min=1)

    @property
    def steps_per_iteration(self) -> int:
        return self.ppo_epochs * self.minibatches

    @property
    def rows_per_micro_batch(self) -> int:
        return self.episodes // (self.minibatches * self.grad_accum)

    def validate(self) -> None:
        PolicyStageConfig.validate(dataclasses.replace(self, max_steps=self.max_steps or 1))
        self.validate_sampling()
        if not self.clip > 0:
            raise ConfigError("clip", f"ε must be > 0, got {self.clip}")
        if self.beta < 0:
            raise ConfigError("beta", f"the KL coefficient must be >= 0, got {self.beta}")
        if not self.temperature > 0:
            raise ConfigError(
                "temperature",
                f"must be > 0 (the policy is softmax(logits / T)), got {self.temperature}",
            )
        if self.episodes % self.n:
            raise ConfigError("episodes", f"{self.episodes} is not a multiple of --n {self.n}")
        if self.algorithm == "grpo" and self.n < 2:
            raise ConfigError("n", "grpo compares answers within a group: give --n 2 or more")
        per = self.minibatches * self.grad_accum
        if self.episodes % per:
            raise ConfigError(
                "episodes",
                f"{self.episodes} episodes do not split into {self.minibatches} minibatches × "
                f"{self.grad_accum} micro-batches; make it a multiple of {per}",
            )


@dataclass
class GRPOConfig(PPOConfig):
    """`lmforge grpo`: PPOConfig with GRPO's defaults (groups of 8, one update per rollout)."""

    algorithm: str = field_(
        "grpo", help="ppo: value head + GAE; grpo: group-normalised rewards, no critic",
        choices=ALGORITHMS,
    )  # fmt: skip
    episodes: int = field_(
        64, help="sampled answers per iteration and process: prompts × --n", min=1
    )
    n: int = field_(
        8,
        help="answers per prompt (the group); under torchrun write --num-samples",
        min=1,
        aliases=("--num-samples",),
    )
    ppo_epochs: int = field_(1, help="passes over each rollout batch", min=1)
    minibatches: int = field_(1, help="optimizer steps per pass", min=1)
    beta: float = field_(0.04, help="weight of the KL(π‖π_ref) loss term (>= 0)")
