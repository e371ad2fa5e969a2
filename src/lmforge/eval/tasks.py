"""Task evaluation: generate an answer to every task record and score it with its checker.

``evaluate_tasks(model, tokenizer, records, cfg) -> TaskEvalResult`` is the one
task evaluator; SFT, rejection sampling, PPO and the recipe call it as a library
function, `lmforge eval tasks` from the command line.

**Prompts.** With ``cfg.template`` (the default, for chat-tuned models) the
conversation before the reply goes through the chat template,
`lmforge.tokenizers.chat.generation_prompt` (``<|user|>…<|end|><|assistant|>``),
and a reply ends at the end-of-turn token ``<|end|>`` or EOS. A base model never
saw role tokens, so ``template=False`` gives it the plain form its pretraining
text shows problems in (`lmforge world`'s documents: a problem's text on its own
line, then its solution or answer on the next lines, documents separated by a
blank line): a new document (EOS, as the prepared stream separates documents),
then the turns' texts joined by newlines, then a newline. A plain reply ends at
EOS, and at the first newline for a direct question (its answer is one line) or
at the first blank line for a chain-of-thought record (its solution is several
lines, ending a document); the stop text is cut from the response.

**Generation** goes through the one engine (`inference.engine.generate_full`):
batches of ``cfg.batch_size`` prompts (ordered by length within a batch group,
so batches carry little padding; the engine gives a row the same tokens in any
batch), greedy unless ``cfg.temperature > 0`` (then prompt ``i`` samples with
seed ``cfg.seed + i``, whatever the batching), at most ``cfg.max_new_tokens``
new tokens. A prompt that does not fit the model's context is scored wrong
(``too_long="wrong"``: the accuracy stays over every record), left out
(``"skip"``), or refused (``"error"``).

**Scoring.** Each record is scored by the checker it names (``"checker"``; the
world's `check`, which reads the final answer, by default), so a chain-of-thought
reply counts by its last ``Answer: X``. A prediction is correct when its score is
1.0. Accuracies, with counts and 95% Wilson intervals, come overall and per task
family, difficulty, split (seen templates, held-out templates, held-out tasks)
and answer mode (CoT or direct): `TaskEvalResult.groups`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from ..common import ConfigError, LmforgeError, get_logger, progress
from ..config import field_
from ..data.world.checkers import check, extract_answer
from .tasks_data import TaskRecord, as_task_records
from .tasks_stats import Accuracy, aggregate, group_labels

# A checker scores a response against its record: (record, response) -> 1.0 or 0.0; its
# extractor says which answer the response gives (None when it gives none).
CHECKERS: dict[str, tuple[Callable[[dict, str], float], Callable[[dict, str], str | None]]] = {
    "world": (check, extract_answer),
}
DEFAULT_CHECKER = "world"


def register_checker(
    name: str,
    score: Callable[[dict, str], float],
    extract: Callable[[dict, str], str | None] = lambda rec, response: None,
) -> None:
    """Make `name` a checker records may name (``"checker": name``)."""
    CHECKERS[name] = (score, extract)


PLAIN_STOP_DIRECT = "\n"  # a direct answer is one line
PLAIN_STOP_COT = "\n\n"  # a worked solution ends its document at a blank line
TOO_LONG = ("wrong", "skip", "error")
# Record fields that are the conversation itself, not metadata to carry to predictions.
_NOT_META = ("messages", "prompt", "chosen", "rejected")


@dataclass
class TaskEvalConfig:
    """How `evaluate_tasks` prompts, generates and counts."""

    template: bool = field_(
        True,
        help="prompt with the chat template (--no-template: a base model's plain prompt, "
        "the problem's text and a newline)",
    )
    batch_size: int = field_(16, help="prompts generated together", min=1)
    max_new_tokens: int = field_(128, help="most tokens generated per answer", min=1)
    temperature: float = field_(0.0, help="sampling temperature (0: greedy)", min=0.0)
    seed: int = field_(0, help="sampling seed (temperature > 0): prompt i uses seed + i")
    limit: int = field_(
        0, help="evaluate only the first N records of each data file (0: all)", min=0
    )
    too_long: str = field_(
        "wrong",
        help="a prompt longer than the model's context: wrong (scored 0), skip (left out) or error",
        choices=TOO_LONG,
    )


@dataclass
class Prediction:
    """One record's prompt, response and score, with the metadata it is grouped by."""

    where: str  # file:line of the record
    split: str  # seen, heldout_templates, heldout_task, or a label given with the file
    prompt: str  # the prompt as the model saw it (special tokens shown)
    response: str  # the generated text, cut at a plain prompt's stop text
    extracted: str | None  # the answer the checker read from the response
    answer: str  # the reference answer
    score: float
    correct: bool
    finish_reason: str  # stop, length, or prompt_too_long
    prompt_tokens: int
    new_tokens: int
    meta: dict[str, Any] = field(default_factory=dict)  # task, difficulty, cot, template, ...

    @property
    def labels(self) -> dict[str, str]:
        return group_labels(self.meta, self.split)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Prediction:
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


@dataclass
class TaskEvalResult:
    """Every prediction, and accuracy per group (see `tasks_stats.GROUPS`)."""

    predictions: list[Prediction]
    config: TaskEvalConfig = field(default_factory=TaskEvalConfig)
    skipped: int = 0  # records left out (too_long="skip")
    groups: dict[str, dict[str, Accuracy]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.groups:
            self.groups = aggregate((p.labels, p.correct) for p in self.predictions)

    @property
    def overall(self) -> Accuracy:
        return self.groups["overall"].get("all", Accuracy(0, 0))

    @property
    def too_long(self) -> int:
        return sum(p.finish_reason == "prompt_too_long" for p in self.predictions) + self.skipped

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.config),
            "n": len(self.predictions),
            "skipped": self.skipped,
            "too_long": self.too_long,
            "accuracy": {
                g: {label: acc.to_dict() for label, acc in by.items()}
                for g, by in self.groups.items()
            },
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], predictions: Sequence[dict[str, Any]]) -> TaskEvalResult:
        """Rebuilt from `to_dict` and the prediction dicts (results.json, predictions.jsonl)."""
        known = TaskEvalConfig.__dataclass_fields__
        cfg = TaskEvalConfig(**{k: v for k, v in d.get("config", {}).items() if k in known})
        preds = [Prediction.from_dict(p) for p in predictions]
        return cls(preds, cfg, int(d.get("skipped", 0)))


# ---------------------------------------------------------------------------
# Prompts


def plain_prompt_text(messages: Sequence[dict[str, str]]) -> str:
    """A base model's prompt: the turns' texts, one per line, then a newline."""
    return "\n".join(m["content"] for m in messages) + "\n"


def build_prompt(tokenizer: Any, messages: Sequence[dict[str, str]], template: bool) -> list[int]:
    """Token ids of the prompt for `messages` (the conversation before the reply)."""
    if template:
        from ..tokenizers.chat import generation_prompt

        return list(generation_prompt(tokenizer, list(messages)))
    # A new document, as pretraining saw them begin: after EOS (BOS when there is none).
    start = tokenizer.eos_id if tokenizer.eos_id is not None else tokenizer.bos_id
    ids = tokenizer.encode(plain_prompt_text(messages))
    return ([int(start)] if start is not None else []) + ids


def plain_stop(rec: TaskRecord) -> str:
    """Where a plain prompt's reply ends: a newline, or a blank line for chain of thought."""
    return PLAIN_STOP_COT if rec.data.get("cot") else PLAIN_STOP_DIRECT


def _checker_of(rec: TaskRecord):
    name = rec.data.get("checker") or DEFAULT_CHECKER
    if name not in CHECKERS:
        raise LmforgeError(
            f"{rec.where}: checker {name!r} is unknown; use one of {', '.join(CHECKERS)}"
        )
    return CHECKERS[name]


def _meta(rec: TaskRecord) -> dict[str, Any]:
    return {k: v for k, v in rec.data.items() if k not in _NOT_META}


# ---------------------------------------------------------------------------
# Evaluation


def _limited(records: list[TaskRecord], limit: int) -> list[TaskRecord]:
    """The first `limit` records of each file (records made in code count as one file)."""
    if limit <= 0:
        return records
    taken: dict[str, int] = {}
    out = []
    for r in records:
        k = taken.get(r.file, 0)
        if k < limit:
            out.append(r)
            taken[r.file] = k + 1
    return out


def evaluate_tasks(
    model: Any,
    tokenizer: Any,
    records: Sequence[TaskRecord | dict[str, Any]],
    cfg: TaskEvalConfig | None = None,
    *,
    desc: str = "eval tasks",
) -> TaskEvalResult:
    """Generate a response to every record with `model` and score it (see the module doc).

    `records` are `TaskRecord`s (from `tasks_data.load_task_files`, which labels each
    file's split) or plain world records (split ``seen``, or their ``split`` field).
    Deterministic: the same model, records and config give the same predictions.
    """
    from ..inference.engine import default_stop_ids, generate_full
    from ..inference.sampling import SamplingConfig, truncate_at_stop

    cfg = cfg or TaskEvalConfig()
    if cfg.too_long not in TOO_LONG:
        raise ConfigError("too_long", f"got {cfg.too_long!r}; allowed: {', '.join(TOO_LONG)}")
    recs = _limited(as_task_records(records), cfg.limit)
    if not recs:
        raise LmforgeError("no records to evaluate")
    if cfg.template:
        from ..tokenizers.chat import has_chat_tokens

        if not has_chat_tokens(tokenizer):
            raise LmforgeError(
                "the tokenizer has no chat role tokens (<|user|>, <|assistant|>, <|end|>), so "
                "the model was never tuned to chat; evaluate it with plain prompts (--no-template, "
                "template=False)"
            )
    checkers = [_checker_of(r) for r in recs]  # unknown checkers fail before any generation
    prompts = [build_prompt(tokenizer, r.prompt_messages(), cfg.template) for r in recs]
    context = getattr(model, "max_seq_len", None)
    fits = [context is None or len(p) < int(context) for p in prompts]
    if cfg.too_long == "error" and not all(fits):
        i = fits.index(False)
        raise LmforgeError(
            f"{recs[i].where}: prompt is {len(prompts[i])} tokens but the model's context is "
            f"{context}; use a model with a longer context, or --too-long wrong|skip"
        )

    stops = default_stop_ids(tokenizer)
    pad_id = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    # Prompts that end the same way generate together: stop strings are per call.
    batches: dict[str, list[int]] = {}
    for i, r in enumerate(recs):
        if fits[i]:
            batches.setdefault("" if cfg.template else plain_stop(r), []).append(i)
    responses: dict[int, tuple[str, str, int]] = {}  # index -> (text, finish, new tokens)
    bar = progress(total=sum(fits), desc=desc, unit="rec")
    try:
        for stop, idx in batches.items():
            scfg = SamplingConfig(
                max_new_tokens=cfg.max_new_tokens,
                temperature=cfg.temperature,
                seed=cfg.seed,
                stop_strings=[stop] if stop else [],
            )
            idx = sorted(idx, key=lambda i: len(prompts[i]))  # stable: file order within a length
            for s in range(0, len(idx), cfg.batch_size):
                chunk = idx[s : s + cfg.batch_size]
                gens = generate_full(
                    model,
                    [prompts[i] for i in chunk],
                    scfg,
                    pad_id=pad_id,
                    seeds=[cfg.seed + i for i in chunk],
                    stop_ids=[stops] * len(chunk),
                    decode=tokenizer.decode if stop else None,
                )
                for i, g in zip(chunk, gens):
                    text = tokenizer.decode(g.tokens)
                    if stop:
                        text = truncate_at_stop(text, [stop])
                    responses[i] = (text, g.finish_reason, len(g.tokens))
                bar.update(len(chunk))
    finally:
        bar.close()

    predictions = []
    skipped = 0
    for i, r in enumerate(recs):
        if not fits[i] and cfg.too_long == "skip":
            skipped += 1
            continue
        score_fn, extract_fn = checkers[i]
        text, finish, n_new = responses.get(i, ("", "prompt_too_long", 0))
        score = float(score_fn(r.data, text)) if i in responses else 0.0
        predictions.append(
            Prediction(
                where=r.where,
                split=r.group_split,
                prompt=tokenizer.decode(prompts[i], skip_special=False),
                response=text,
                extracted=extract_fn(r.data, text) if i in responses else None,
                answer=str(r.data["answer"]),
                score=score,
                correct=score == 1.0,
                finish_reason=finish,
                prompt_tokens=len(prompts[i]),
                new_tokens=n_new,
                meta=_meta(r),
            )
        )
    n_long = len(recs) - sum(fits)
    if n_long:
        what = "left out" if cfg.too_long == "skip" else "scored wrong"
        get_logger("eval").warning(
            f"{n_long} of {len(recs)} prompts are longer than the model's context ({context} "
            f"tokens) and were {what}"
        )
    if not predictions:
        raise LmforgeError(
            f"every prompt is longer than the model's context ({context} tokens); nothing "
            "was evaluated"
        )
    return TaskEvalResult(predictions, cfg, skipped)
