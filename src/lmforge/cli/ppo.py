"""`lmforge ppo`: PPO fine-tuning of a policy run (value head, GAE, KL to a reference)."""

from __future__ import annotations

import argparse

VERB = "ppo"

DESCRIPTION = (
    "For --iterations K rounds: sample --episodes answers to prompts of --prompts with the "
    "live policy (--from RUN, an SFT run), score them with --reward (checker: the world's "
    "checker, 1 right 0 wrong; graded: its partial-credit checker; a reward-model run; or a "
    "Python function module:fn / file.py:fn called as fn(prompt, completion, **fields)), and "
    "update the policy {update} for --ppo-epochs passes of --minibatches steps. The frozen "
    "reference is the --from policy (kept in RUN/reference.safetensors). Writes a run folder "
    "with RUN/ppo/iterations.jsonl (reward, KL, entropy, clip fraction, value loss, explained "
    "variance, lengths, tokens/s per iteration), RUN/ppo/samples/, plots/reward_kl.png and "
    "report.md; resumes exactly (--resume); runs under `torchrun --nproc_per_node N -m lmforge "
    "{verb} ...` (each process draws its own rollouts)."
)


def register_rl(subparsers, verb: str, cls: type, help: str, update: str) -> None:
    """The `ppo` / `grpo` verb: `cls`'s flags, and a run that checks the algorithm matches."""
    from ._stage import add_stage_args

    parser = subparsers.add_parser(
        verb, help=help, description=DESCRIPTION.format(update=update, verb=verb)
    )
    add_stage_args(parser, cls, cls.__name__)

    def run(args: argparse.Namespace) -> int:
        from ..stages.ppo import ppo
        from ._stage import stage_config

        ppo(stage_config(args, cls), resume=args.resume, verb=verb)
        return 0

    parser.set_defaults(func=run)


def register(subparsers: argparse._SubParsersAction) -> None:
    from ..stages.ppo_config import PPOConfig

    register_rl(
        subparsers, VERB, PPOConfig,
        "PPO: rollouts scored by a reward, a value head on the policy, GAE, KL to the reference",
        "with PPO (per-token reward −β·KL to the reference plus the score at the end, GAE "
        "advantages from a value head on the policy's trunk, clipped surrogate and value "
        "losses)",
    )  # fmt: skip
