"""What scores sampled answers (rejection sampling, PPO, GRPO): checkers, a reward model, a function.

`open_reward(spec, prompts, ...)` checks everything before the run folder is
touched and returns a `Reward`: `score(prompts, texts) -> [float]`, one number
per (prompt, sampled answer).

* ``checker``: the checker each record names (``"checker"``, the world's `check`
  by default; `lmforge.eval.tasks.CHECKERS`): 1.0 for a right final answer, else 0;
* ``graded``: the world's partial-credit checker (`data.world.graded.check_graded`,
  in [0, 1]; any right answer scores at least 0.55);
* a run folder: a reward model (`lmforge reward train`: a decoder with a scalar
  head), scored with its own tokenizer through the chat template
  (`eval.reward_scores.score_responses`), as it saw its pairs in training;
* ``module:function`` (or ``path/to/file.py:function``): a Python function called
  once per sample as ``fn(prompt, completion, **fields) -> float`` — ``prompt`` the
  last user message, ``completion`` the sampled answer, ``fields`` the prompt
  record's other fields (``answer``, ``task``, ...). A call that raises or returns
  a non-finite number scores NaN and is recorded in `Reward.errors` (the prompt's
  file:line and the error): the caller skips and counts such samples.

A policy run given as the reward, prompts without answer fields for a checker,
or a checker the records name that does not exist: one line, file:line.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..common import LmforgeError
from .rs_config import CHECKER_REWARDS


@dataclass
class Reward:
    """A scorer of (prompt conversation, answer text) pairs, with what it is for the report."""

    kind: str  # "checker", "graded" or "model"
    describe: str  # one line for logs and the report
    score_fn: Callable[[Sequence[Any], Sequence[str]], list[float]]
    default_min: float | None  # --min-reward auto
    record: dict[str, Any] = field(default_factory=dict)  # the reward run's parent_record
    model: Any = None  # the reward model (moved to the device by `to`)
    tokenizer: Any = None  # the reward model's tokenizer (it may differ from the policy's)
    errors: list[str] = field(default_factory=list)  # "file:line: error" of failed calls

    def score(self, prompts: Sequence[Any], texts: Sequence[str]) -> list[float]:
        return [float(s) for s in self.score_fn(prompts, texts)]

    def to(self, device: str) -> Reward:
        if self.model is not None:
            self.model.to(device)
        return self


def _needs_answers(prompts: Sequence[Any], spec: str) -> None:
    """Every prompt must carry what a checker scores by (`answer`; `answer_type` optional)."""
    for conv in prompts:
        if "answer" not in conv.meta:
            where = conv.meta.get("where", "a prompt")
            raise LmforgeError(
                f"{where}: has no answer field; --reward {spec} scores answers against the "
                "record's answer (and answer_type), as in `lmforge world`'s instructions/*.jsonl; "
                "give such records, or a reward model with --reward RM_RUN"
            )


def checker_reward(prompts: Sequence[Any]) -> Reward:
    """The binary checker each record names (the world's `check` unless it names another)."""
    from ..eval.tasks import CHECKERS, DEFAULT_CHECKER

    _needs_answers(prompts, "checker")
    for conv in prompts:
        name = conv.meta.get("checker") or DEFAULT_CHECKER
        if name not in CHECKERS:
            raise LmforgeError(
                f"{conv.meta.get('where', 'a prompt')}: checker {name!r} is unknown; use one of "
                f"{', '.join(CHECKERS)}"
            )

    def score(convs: Sequence[Any], texts: Sequence[str]) -> list[float]:
        return [
            CHECKERS[c.meta.get("checker") or DEFAULT_CHECKER][0](c.meta, t)
            for c, t in zip(convs, texts, strict=True)
        ]

    return Reward("checker", "the world's checker (1 right, 0 wrong)", score, 1.0)


def graded_reward(prompts: Sequence[Any]) -> Reward:
    """The world's graded checker: closeness of the answer times the quality of its form."""
    from ..data.world.graded import MAX_PENALTY, check_graded

    _needs_answers(prompts, "graded")
    right = 1.0 - MAX_PENALTY  # the least a right answer scores, however sloppy (0.55)

    def score(convs: Sequence[Any], texts: Sequence[str]) -> list[float]:
        return [check_graded(c.meta, t) for c, t in zip(convs, texts, strict=True)]

    return Reward("graded", "the world's graded checker (0..1)", score, right)


def model_reward(path: str, *, batch_size: int = 32) -> Reward:
    """A reward-model run (a scalar or likelihood head) scoring with its own tokenizer."""
    from ..eval.reward_scores import score_responses
    from ..models.heads import head_kind, is_reward_model
    from ..runs import load_run, parent_record

    if not Path(path).exists():
        raise LmforgeError(
            f"--reward {path}: no such run folder; give checker, graded, or a reward-model run "
            "(`lmforge reward train`)"
        )
    run = load_run(path, need="transformer-decoder")
    kind = head_kind(run.model)
    if not is_reward_model(run.model):
        what = "a policy run (no reward head)" if kind is None else f"a run with a {kind} head"
        raise LmforgeError(
            f"--reward {path}: is {what}; train a reward model with `lmforge reward train` "
            "or use --reward checker"
        )
    model, tok = run.model.eval(), run.tokenizer
    for p in model.parameters():
        p.requires_grad_(False)

    def score(convs: Sequence[Any], texts: Sequence[str]) -> list[float]:
        items = [(c.messages, t) for c, t in zip(convs, texts, strict=True)]
        return score_responses(model, tok, items, batch_size=batch_size)

    return Reward(
        "model", f"reward model {path} (step {run.step})", score, None, parent_record(run), model,
        tok,
    )  # fmt: skip


def _load_function(spec: str) -> Callable[..., Any]:
    """The function `module:function` or `file.py:function` names (one line if it cannot)."""
    import importlib
    import importlib.util

    where, _, name = spec.rpartition(":")
    try:
        if where.endswith(".py"):
            file = Path(where)
            if not file.is_file():
                raise LmforgeError(f"--reward {spec}: no such file {where}")
            mod_spec = importlib.util.spec_from_file_location(f"lmforge_reward_{file.stem}", file)
            module = importlib.util.module_from_spec(mod_spec)
            mod_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except LmforgeError:
        raise
    except Exception as e:  # an import error, or the module's own code failing
        raise LmforgeError(
            f"--reward {spec}: cannot import {where} ({type(e).__name__}: {e}); give an "
            "importable module (on PYTHONPATH) or a .py file, then :function"
        ) from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise LmforgeError(f"--reward {spec}: {where} has no function {name!r}")
    return fn


def function_reward(spec: str) -> Reward:
    """`module:function` as a reward: per-sample calls, failures scored NaN and recorded."""
    import math

    fn = _load_function(spec)
    errors: list[str] = []

    def score(convs: Sequence[Any], texts: Sequence[str]) -> list[float]:
        out = []
        for conv, text in zip(convs, texts, strict=True):
            users = [m.content for m in conv.messages if m.role == "user"]
            fields = {k: v for k, v in conv.meta.items() if k not in ("where", "messages")}
            where = conv.meta.get("where", "a prompt")
            try:
                value = float(fn(users[-1] if users else "", text, **fields))
            except Exception as e:  # the user's code: any failure is that sample's, not ours
                errors.append(f"{where}: {spec} raised {type(e).__name__}: {e}")
                value = math.nan
            else:
                if not math.isfinite(value):
                    errors.append(f"{where}: {spec} returned {value}")
                    value = math.nan
            out.append(value)
        return out

    return Reward("function", f"the function {spec}", score, None, errors=errors)


def is_function_spec(spec: str) -> bool:
    """`module:function` or `file.py:function` (not a run folder, not C:\\ on Windows)."""
    where, sep, name = spec.rpartition(":")
    return bool(sep and where and name.isidentifier() and not Path(spec).exists())


def open_reward(spec: str, prompts: Sequence[Any], *, batch_size: int = 32) -> Reward:
    """The reward `--reward` names, checked against the prompts (see the module doc)."""
    if spec == "checker":
        return checker_reward(prompts)
    if spec == "graded":
        return graded_reward(prompts)
    if spec in CHECKER_REWARDS:  # a name added to CHECKER_REWARDS without a scorer here
        raise LmforgeError(f"--reward {spec}: not implemented")
    if is_function_spec(spec):
        return function_reward(spec)
    return model_reward(spec, batch_size=batch_size)


def check_reward_unchanged(reward: Reward, recorded: dict[str, Any] | None) -> None:
    """On resume, the reward model must be the one the run started with (same weights)."""
    if reward.kind != "model" or not recorded:
        return
    was, now = recorded.get("weights_sha256"), reward.record.get("weights_sha256")
    if was and now != was:
        raise LmforgeError(
            f"--reward {recorded.get('run')}: its weights changed since this run started "
            f"(step {recorded.get('step')} then, step {reward.record.get('step')} now); resume "
            "with the reward model the run started with, or start a new run"
        )
