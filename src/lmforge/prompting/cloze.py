"""LAMBADA- and TriviaQA-style evaluation: zero/one/few-shot prompts, greedy answers, accuracy.

The prompt is built by the prompting builder (`PromptBuilder`: instruction, ``k``
shown examples with their answers, then the query) from an `AnswerTask`, the
builder's task with a free answer in place of a label::

    Q: Who organised the Kite Fair?\\nA: Zoe\\n\\n          a shown example (format "qa")
    Q: Which city is Anna's home?\\nA:                    the query

and continued greedily by the engine (`lmforge.inference.engine.generate_full`),
cut at a newline. What counts as right:

* ``lambada``: the first word of the continuation equals the passage's last word
  (case and surrounding punctuation ignored), as GPT-2/3 score LAMBADA. Where the
  set has candidate words (the world's: every name, pet name, city or object of
  the answer's kind) also the **choice** accuracy: the candidate with the highest
  log-probability after the prompt (`score_continuations`, one prefill shared by
  all candidates and the shown examples prefilled once) is the answer.
  Accuracy is reported by ``distance`` (sentences between the answer's mention
  and the blank).
* ``trivia``: **exact match**, the normalised answer (`normalize_answer`: lower
  case, no punctuation or articles) equals a normalised alias; **contains**: a
  normalised alias appears in it as whole words (TriviaQA's two scores).
* both: the **answer log-prob**, log p(the answer's tokens | prompt) in nats: a
  continuous score that moves before accuracy leaves the floor (how "emergent"
  jumps can be an artefact of an all-or-nothing metric).

Formats (`FORMATS`): lambada ``plain`` (the passage, continued: GPT-2's zero-shot
form) and ``blank`` (GPT-3's fill-in-the-blank: ``passage ____. -> word``);
trivia ``qa`` (``Q: ...\\nA:``, GPT-3's) and ``question`` (``Question: ...\\nAnswer:``,
the pretraining text's own Q&A lines). Shown examples are drawn per seed from the
set's train pool (uniformly; k = 0 has one draw), the same ones for every query.
The results (`ItemResult`, `ClozeEval`, `ClozeResult`: summaries by k, distance and
kind, paired gains) are in `cloze_result`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ..common import ConfigError, LmforgeError, progress
from ..config import field_
from ..data.world.trivia import normalize_answer
from .builder import STARTS, PromptBuilder, sample_indices
from .cloze_data import ClozeItem, ClozeSet
from .cloze_result import (  # noqa: F401 (LOGPROB, paired_difference: re-exported)
    LOGPROB,
    ClozeEval,
    ClozeResult,
    ItemResult,
    paired_difference,
)
from .tasks import Example, PromptFormat

FORMATS: dict[str, tuple[PromptFormat, ...]] = {
    "lambada": (
        PromptFormat("plain", "{context}"),
        PromptFormat("blank", "{context} ____. ->"),
    ),
    "trivia": (
        PromptFormat("qa", "Q: {question}\nA:"),
        PromptFormat("question", "Question: {question}\nAnswer:"),
    ),
}
STOP = ("\n",)


@dataclass
class ClozeConfig:
    """What `lmforge eval cloze` evaluates and how (every field is a flag)."""

    k: list[int] = field_(
        default_factory=lambda: [0, 1, 4], help="shown examples per prompt; several as 0,1,4"
    )
    seeds: int = field_(3, help="example draws per k > 0 (seeds first_seed, ...)", min=1)
    first_seed: int = field_(0, help="seed of the first draw")
    limit: int = field_(0, help="score this many test items (a fixed seed-0 subset; 0: all)", min=0)
    lambada_format: str = field_(
        "plain", help="lambada prompt: plain (continue the passage) or blank (GPT-3's ____. ->)",
        choices=tuple(f.name for f in FORMATS["lambada"]),
    )  # fmt: skip
    trivia_format: str = field_(
        "qa", help="trivia prompt: qa (Q: ... A:) or question (Question: ... Answer:)",
        choices=tuple(f.name for f in FORMATS["trivia"]),
    )  # fmt: skip
    max_new_tokens: int = field_(8, help="most new tokens per answer", min=1)
    choices: bool = field_(
        True, help="lambada: also score the candidate words of the answer's kind, when known"
    )
    batch_size: int = field_(16, help="prompts per forward", min=1)
    threads: int = field_(
        0, help="torch CPU threads (0: torch's default; on a busy machine 1 is often fastest)",
        min=0,
    )  # fmt: skip
    start: str = field_(
        "eos", help="token before the prompt: eos (as documents begin in pretraining), bos, none",
        choices=STARTS,
    )  # fmt: skip

    def validate(self) -> None:
        if not self.k:
            raise ConfigError("k", "give at least one k")
        if any(k < 0 for k in self.k):
            raise ConfigError("k", f"must be 0 or more, got {self.k}")

    def format_for(self, task: str) -> PromptFormat:
        name = self.lambada_format if task == "lambada" else self.trivia_format
        return next(f for f in FORMATS[task] if f.name == name)


@dataclass
class AnswerTask:
    """The builder's task for free answers: an example's ``label`` is its answer text."""

    name: str
    format: PromptFormat
    train: list[Example]
    test: list[Example]

    def query_text(self, example: Example) -> str:
        try:
            return self.format.template.format_map(example.fields)
        except KeyError as e:
            raise LmforgeError(
                f"{example.where}: no field {e.args[0]!r}, which format {self.format.name!r} uses"
            ) from None

    def label_text(self, label: str, synonym: int = 0) -> str:
        return self.format.label_sep + label

    def demo_text(self, example: Example) -> str:
        return self.query_text(example) + self.label_text(example.label) + self.format.label_suffix


def _example(item: ClozeItem) -> Example:
    return Example(dict(item.fields), item.answer, item.where)


def answer_task(cset: ClozeSet, fmt: PromptFormat) -> AnswerTask:
    return AnswerTask(
        cset.name, fmt, [_example(x) for x in cset.train], [_example(x) for x in cset.test]
    )


# ---------------------------------------------------------------------------
# What counts as right

_FIRST_WORD = re.compile(r"[^\W_]+(?:['’-][^\W_]+)*")


def first_word(text: str) -> str:
    """The first word of a continuation ('' when it has none)."""
    m = _FIRST_WORD.search(text)
    return m.group(0) if m else ""


def same_word(a: str, b: str) -> bool:
    """Equal as words: case and surrounding punctuation ignored."""
    strip = re.compile(r"^[^\w]+|[^\w]+$")
    return strip.sub("", a).lower() == strip.sub("", b).lower() != ""


def exact_match(prediction: str, aliases: Sequence[str]) -> bool:
    p = normalize_answer(prediction)
    return bool(p) and any(p == normalize_answer(a) for a in aliases)


def contains_alias(prediction: str, aliases: Sequence[str]) -> bool:
    """A normalised alias occurs in the normalised prediction as whole words."""
    p = f" {normalize_answer(prediction)} "
    return any(f" {a} " in p for a in (normalize_answer(x) for x in aliases) if a)


def recency_guess(item: ClozeItem, words: Sequence[str]) -> str | None:
    """The candidate mentioned last in the item's context (a no-model baseline), or None."""
    context = item.fields.get("context", "")
    best, at = None, -1
    for w in words:
        hits = [m.end() for m in re.finditer(rf"(?<!\w){re.escape(w)}(?!\w)", context)]
        if hits and hits[-1] > at:
            best, at = w, hits[-1]
    return best


def baselines(cset: ClozeSet) -> dict[str, float]:
    """No-model accuracies of a set with candidate words: chance (one candidate of the kind
    at random) and recency (the candidate of the kind mentioned last; lures defeat it)."""
    items = [x for x in cset.test if x.kind in cset.candidates]
    if not items:
        return {}
    chance = sum(1 / len(cset.candidates[x.kind]) for x in items) / len(items)
    recent = sum(recency_guess(x, cset.candidates[x.kind]) == x.answer for x in items)
    return {"chance": chance, "recency": recent / len(items)}


# ---------------------------------------------------------------------------
# One draw


def answer_room(tokenizer, cset: ClozeSet, fmt: PromptFormat, cfg: ClozeConfig) -> list[int]:
    """Tokens each test item needs after its prompt: the generated answer, the gold answer
    (scored for its log-prob) and, with candidates, the longest candidate of its kind."""
    longest = {
        kind: max(len(tokenizer.encode(fmt.label_sep + w)) for w in words)
        for kind, words in cset.candidates.items()
        if words and cfg.choices
    }
    return [
        max(
            cfg.max_new_tokens,
            len(tokenizer.encode(fmt.label_sep + x.answer)),
            longest.get(x.kind, 0),
        )
        for x in cset.test
    ]


def _check_lengths(model, prompts, test: Sequence[ClozeItem], room: Sequence[int], k: int) -> None:
    limit = model if isinstance(model, int) else getattr(model, "max_seq_len", None)
    if not limit:
        return
    for p, item, extra in zip(prompts, test, room):
        if len(p.ids) + extra > int(limit):
            raise LmforgeError(
                f"{item.where}: the {k}-shot prompt has {len(p.ids)} tokens (+{extra} for the "
                f"answer), more than the model's context of {limit}; use a smaller --k or "
                "--max-new-tokens"
            )


def generate(model, tokenizer, prompt_ids: list[list[int]], max_new_tokens: int, batch_size: int):
    """Greedy continuations (text, cut at a newline) of every prompt, in batches by length."""
    from ..inference.engine import default_stop_ids, generate_full
    from ..inference.sampling import SamplingConfig, truncate_at_stop

    cfg = SamplingConfig(
        max_new_tokens=max_new_tokens, temperature=0.0, stop_strings=list(STOP),
        stop_token_ids=default_stop_ids(tokenizer),
    )  # fmt: skip
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    order = sorted(range(len(prompt_ids)), key=lambda i: len(prompt_ids[i]))
    out: list[str] = [""] * len(prompt_ids)
    for s in range(0, len(order), batch_size):
        chunk = order[s : s + batch_size]
        gens = generate_full(
            model, [prompt_ids[i] for i in chunk], cfg, pad_id=pad, decode=tokenizer.decode
        )
        for i, g in zip(chunk, gens):
            out[i] = truncate_at_stop(tokenizer.decode(g.tokens), list(STOP))
    return out


def _choices(model, tokenizer, cset: ClozeSet, prompts, fmt: PromptFormat, batch_size: int):
    """Per test item: the best-scored candidate word of its kind and the gold answer's
    log-probability among the scores (None, None where its kind has no candidates)."""
    from .scoring import score_continuations

    picks: list[str | None] = [None] * len(cset.test)
    gold: list[float | None] = [None] * len(cset.test)
    by_kind: dict[str, list[int]] = {}
    for i, item in enumerate(cset.test):
        if item.kind in cset.candidates and item.answer in cset.candidates[item.kind]:
            by_kind.setdefault(item.kind, []).append(i)
    for kind, rows in by_kind.items():
        words = cset.candidates[kind]
        ids = [tokenizer.encode(fmt.label_sep + w) for w in words]
        scores = score_continuations(
            model, [prompts[i].ids for i in rows], ids, batch_size=batch_size
        )  # (rows, words)
        for r, (i, j) in enumerate(zip(rows, scores.argmax(dim=-1).tolist())):
            picks[i] = words[j]
            gold[i] = float(scores[r, words.index(cset.test[i].answer)])
    return picks, gold


def _answer_logprobs(model, tokenizer, cset, prompts, fmt, batch_size, known) -> list[float]:
    """log p(the answer's tokens | prompt) per item, summed; `known` where already scored."""
    from ..inference.engine import sequence_logprobs

    need = [i for i, x in enumerate(known) if x is None]
    out = list(known)
    if need:
        got = sequence_logprobs(
            model,
            [prompts[i].ids for i in need],
            [tokenizer.encode(fmt.label_sep + cset.test[i].answer) for i in need],
            batch_size=batch_size,
        )
        for i, lp in zip(need, got):
            out[i] = lp
    return out  # type: ignore[return-value]


def evaluate_draw(
    model, tokenizer, cset: ClozeSet, demos: Sequence[ClozeItem], cfg: ClozeConfig, seed: int = 0
) -> ClozeEval:
    """Every test item of `cset` after `demos` (see the module doc)."""
    fmt = cfg.format_for(cset.task)
    task = answer_task(cset, fmt)
    builder = PromptBuilder(task, tokenizer, start=cfg.start)  # type: ignore[arg-type]
    prompts = builder.build_many([_example(d) for d in demos], task.test)
    _check_lengths(model, prompts, cset.test, answer_room(tokenizer, cset, fmt, cfg), len(demos))
    ids = [p.ids for p in prompts]
    responses = generate(model, tokenizer, ids, cfg.max_new_tokens, cfg.batch_size)
    picks: list[str | None] = [None] * len(cset.test)
    gold: list[float | None] = [None] * len(cset.test)
    if cset.task == "lambada" and cfg.choices and cset.candidates:
        picks, gold = _choices(model, tokenizer, cset, prompts, fmt, cfg.batch_size)
    logps = _answer_logprobs(model, tokenizer, cset, prompts, fmt, cfg.batch_size, gold)
    results = []
    for item, text, pick, lp in zip(cset.test, responses, picks, logps):
        if cset.task == "lambada":
            word = first_word(text)
            right = None if pick is None else same_word(pick, item.answer)
            results.append(
                ItemResult(text, word, same_word(word, item.answer), None, pick, right, lp)
            )
        else:
            line = text.strip()
            results.append(
                ItemResult(
                    text,
                    line,
                    exact_match(line, item.aliases),
                    contains_alias(line, item.aliases),
                    answer_logprob=lp,
                )  # fmt: skip
            )
    mean_len = sum(len(i) for i in ids) / len(ids)
    return ClozeEval(len(demos), seed, list(demos), results, mean_len)


# ---------------------------------------------------------------------------
# The sweep


def take_items(items: Sequence[ClozeItem], limit: int) -> list[ClozeItem]:
    """All items, or `limit` of a fixed seed-0 shuffle (kept in file order)."""
    if limit <= 0 or limit >= len(items):
        return list(items)
    index = list(range(len(items)))
    random.Random(0).shuffle(index)
    return [items[i] for i in sorted(index[:limit])]


def check_plan(cset: ClozeSet, cfg: ClozeConfig) -> None:
    """Refuse, before a model is loaded, a k the shown-example pool cannot give."""
    most = max(cfg.k)
    if most > len(cset.train):
        raise LmforgeError(
            f"{cset.name}: k={most} is larger than the {len(cset.train)} items that shown "
            f"examples are drawn from ({cset.train_source}); use k <= {len(cset.train)}"
        )
    if not cset.test:
        raise LmforgeError(f"{cset.name}: no test items to score ({cset.source})")


def draw_plan(cset: ClozeSet, cfg: ClozeConfig) -> list[tuple[int, list[ClozeItem]]]:
    """(seed, shown examples) of every draw: each k of ``cfg.k`` and seed (k = 0: one)."""
    seeds = range(cfg.first_seed, cfg.first_seed + cfg.seeds)
    pool = answer_task(cset, cfg.format_for(cset.task))
    draws = []
    for k in cfg.k:
        for seed in seeds if k else seeds[:1]:
            index = sample_indices(pool, k, seed=seed, balanced=False)  # type: ignore[arg-type]
            draws.append((seed, [cset.train[i] for i in index]))
    return draws


def check_prompts(model_or_context, tokenizer, cset: ClozeSet, cfg: ClozeConfig):
    """The draw plan, once every prompt of it is known to fit the context (a model's
    ``max_seq_len`` or a number) with ``max_new_tokens`` to spare; one line otherwise.
    Only tokenizes, so a too-long prompt is refused before any forward (or training)."""
    check_plan(cset, cfg)
    draws = draw_plan(cset, cfg)
    fmt = cfg.format_for(cset.task)
    scored = ClozeSet(cset.name, cset.task, cset.train, take_items(cset.test, cfg.limit),
                      cset.candidates)  # fmt: skip
    query = answer_task(scored, fmt)
    builder = PromptBuilder(query, tokenizer, start=cfg.start)  # type: ignore[arg-type]
    room = answer_room(tokenizer, scored, fmt, cfg)
    for _, demos in sorted(draws, key=lambda d: -len(d[1])):  # the longest prompts first
        prompts = builder.build_many([_example(d) for d in demos], query.test)
        _check_lengths(model_or_context, prompts, scored.test, room, len(demos))
    return draws


def run_cloze(
    model, tokenizer, cset: ClozeSet, cfg: ClozeConfig | None = None, *, show_progress=True
) -> ClozeResult:
    """Every k of ``cfg.k`` and every seed: draw the shown examples, evaluate, collect."""
    cfg = cfg or ClozeConfig()
    scored = ClozeSet(
        cset.name, cset.task, cset.train, take_items(cset.test, cfg.limit), cset.candidates,
        cset.source, cset.train_source,
    )  # fmt: skip
    result = ClozeResult(scored, cfg.format_for(cset.task).name, cfg)
    draws = check_prompts(model, tokenizer, cset, cfg)
    bar = (
        progress(total=len(draws), desc=f"cloze {cset.name}", unit="draw")
        if show_progress
        else None
    )
    for seed, demos in draws:
        result.evals.append(evaluate_draw(model, tokenizer, scored, demos, cfg, seed))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return result
