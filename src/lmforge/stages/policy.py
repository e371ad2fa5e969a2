"""What the stages that sample from a policy share (rejection sampling, PPO, GRPO).

`check_policy` refuses a reward model as `--from`; `policy_model_and_tokenizer`
gives the policy's arch, config, tokenizer and weights (the parent's, or none on
resume); `read_policy_prompts` reads the prompts, keeps those that leave room for
an answer and takes a seeded subset (`cfg.prompts`, `cfg.skip_bad_lines`,
`cfg.max_prompts`, `cfg.seed`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from ..common import ConfigError, LmforgeError
from ..config import field_
from .base import StageConfig, StageStart, check_resume_lora


@dataclass
class PolicyStageConfig(StageConfig):
    """The fields of the stages that sample from a policy and score the answers (rs, ppo, grpo)."""

    prompts: list[str] = field_(
        default_factory=list,
        help="prompt files (JSONL: prompt, messages, instruction or preference records; folders "
        "and globs too); with --reward checker|graded they need answer fields (world "
        "instructions/*.jsonl)",
    )
    reward: str = field_(
        "checker",
        help="checker: the world's right/wrong checker (1 or 0); graded: its partial-credit "
        "checker in [0, 1]; a reward-model run folder (`lmforge reward train`); or a Python "
        "function module:fn / file.py:fn called as fn(prompt, completion, **fields)",
    )
    max_prompts: int = field_(
        0, help="use a seeded random subset of this many prompts (0: all of them)", min=0
    )
    top_p: float = field_(1.0, help="nucleus sampling mass (1: off)", min=0.0, max=1.0)
    top_k: int = field_(0, help="sample among the k most likely tokens (0: off)", min=0)
    reward_batch_size: int = field_(32, help="answers a reward model scores together", min=1)
    skip_bad_lines: bool = field_(False, help="count and skip malformed prompt records")

    def validate_sampling(self) -> None:
        """The checks these stages share (their own `validate` calls it)."""
        if not self.prompts:
            raise ConfigError("prompts", "required: the prompt files to sample answers for")
        if not self.reward:
            raise ConfigError(
                "reward", "required: checker, graded, a reward-model run folder or module:fn"
            )
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError("top_p", f"must be in (0, 1], got {self.top_p}")
        if self.parallel == "fsdp":
            raise ConfigError(
                "parallel",
                "fsdp shards the policy, but every process samples with the whole live model; "
                "use ddp (the default under torchrun)",
            )


def policy_inputs(cfg: PolicyStageConfig) -> tuple[tuple[str, str], ...]:
    """What `--out` must not overlap: the prompt files, and the reward model's run folder
    (a checker or a Python function names no folder)."""
    from .rewards import CHECKER_REWARDS, is_function_spec
    from .sft import _recursive_root

    found = [("prompts", _recursive_root(p)) for p in cfg.prompts]
    if cfg.reward not in CHECKER_REWARDS and not is_function_spec(cfg.reward):
        found.append(("reward model", cfg.reward))
    return tuple(found)


def check_policy(start: StageStart) -> None:
    """`--from` must be a policy: a reward model scores text, it does not generate it."""
    from ..models.heads import REWARD_KINDS, head_kind

    if start.parent is None:
        return
    kind = head_kind(start.parent.model)
    if kind in REWARD_KINDS:
        raise LmforgeError(
            f"--from {start.parent.path}: is a reward model (it scores text, it does not "
            "generate); this stage needs a policy run (sft or pretrain) to sample from; give the "
            "reward model as --reward"
        )
    if kind is not None:
        raise LmforgeError(
            f"--from {start.parent.path}: has a {kind} head; this stage needs a policy run (sft or "
            "pretrain) to sample from"
        )


def policy_model_and_tokenizer(cfg: Any, start: StageStart) -> tuple[str, Any, Any, Any]:
    """(arch, model config, tokenizer, parent state dict or None); the role tokens checked."""
    from ..models import read_model_meta
    from ..runs.load import load_tokenizer
    from ..tokenizers.chat import chat_token_ids

    if start.resume is not None:
        arch, mcfg, _ = read_model_meta(start.resume.model_file)
        check_resume_lora(start.resume, cfg.lora)
        tok, sd = load_tokenizer(cfg.out, start.resume), None
    else:
        arch, mcfg = start.parent.arch, start.parent.model.config
        tok, sd = start.parent.tokenizer, start.parent.model.state_dict()
    chat_token_ids(tok)  # the one-line error (and the fix) for a tokenizer without roles
    return arch, mcfg, tok, sd


def read_policy_prompts(cfg: Any, tok: Any, seq_len: int) -> tuple[list[Any], list[list[int]], str]:
    """(prompts, their generation-prompt ids, a summary): those that leave room for an answer
    in a training row, then a seeded subset of `max_prompts` of them."""
    from ..data.preferences import read_prompts
    from ..tokenizers.chat import generation_prompt

    convs = read_prompts(cfg.prompts, skip_bad_lines=cfg.skip_bad_lines)
    ids = [generation_prompt(tok, c.messages) for c in convs]
    # A row holds prompt + answer + <|end|> in seq_len + 1 tokens: at least one answer token.
    fits = [i for i, p in enumerate(ids) if len(p) + 2 <= seq_len + 1]
    if not fits:
        longest = min(len(p) for p in ids)
        raise LmforgeError(
            f"{convs[0].meta.get('where', cfg.prompts[0])}: no prompt leaves room for an answer in "
            f"a row of {seq_len} tokens (the shortest prompt is {longest} tokens); raise --seq-len "
            "or shorten the prompts"
        )
    chosen = fits
    if cfg.max_prompts and cfg.max_prompts < len(fits):
        chosen = sorted(random.Random(cfg.seed).sample(fits, cfg.max_prompts))
    too_long = len(convs) - len(fits)
    summary = (
        f"prompts: {len(convs):,} read from {', '.join(cfg.prompts)}"
        + (f", {too_long:,} too long for a {seq_len}-token row left out" if too_long else "")
        + (f", a seeded subset of {len(chosen):,} used" if len(chosen) < len(fits) else "")
    )
    return [convs[i] for i in chosen], [ids[i] for i in chosen], summary
