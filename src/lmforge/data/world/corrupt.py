"""Worse responses for preference pairs and rankings: wrong, unhelpful, or right but sloppy.

Each function returns the assistant text only. `wrong` and `unhelpful` fail
the problem's checker; `sloppy` passes it (the answer is right, the form is not).
The reply-level functions (`wrong_reply`, `unhelpful_reply`, `sloppy_reply`)
work on a `Reply`: a world problem's target (direct or chain-of-thought) or a
dialogue's last answer, a sentence such as "Your dog is called Mango.".

How far off each one is, which preferences.py rates pairs by (graded.py scores it):

* wrong, near: a number off by a little for its size (1–2 of a small count),
  two list items (or letters) swapped — most of the graded closeness kept;
* wrong, far: a number off by 1.3–4 times its scale, a list reversed, another
  option (a choice is right or wrong, never near);
* in a dialogue a wrong answer is, when it can be, one named earlier (another
  word of the list, a city from a filler turn, the starting count);
* sloppy, cosmetic: stray or doubled spaces, list separators, the answer in
  another case;
* sloppy, messy: hedges and filler (``umm... i think its 42??``), shouting,
  chain-of-thought run together into one line.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass

from .checkers import check_answer
from .graded import closeness, number_scale
from .problems import CHOICE, NUMBER, SEQUENCE, Problem

UNHELPFUL = (
    "I don't know.",
    "I'm not sure, sorry.",
    "That is a hard question.",
    "Let me think about it some other time.",
    "Why do you want to know?",
)
# Refusals that only make sense after earlier turns (multi-turn pairs).
FORGETFUL = (
    "Sorry, I don't remember.",
    "You never told me that.",
    "I can't recall what you said before.",
)
P_FAR = 0.2  # share of wrong answers (numbers, lists) drawn far from the right one
P_MESSY = 0.5  # share of sloppy replies that are messy rather than cosmetic
_NEAR_STEPS = (1, 2, 3, 5, 10, 20, 50, 100)


@dataclass(frozen=True)
class Reply:
    """A right reply and what corrupting it needs."""

    text: str  # the right reply as the world writes it
    answer: str
    answer_type: str
    choices: tuple[str, ...] = ()
    reasoning: tuple[str, ...] = ()  # CoT lines when `text` is a worked solution
    context: str = ""  # the earlier turns of a dialogue: where plausible mistakes come from

    @classmethod
    def of_problem(cls, problem: Problem, cot: bool) -> Reply:
        text = problem.cot_target() if cot else problem.answer
        reasoning = problem.reasoning if cot else ()
        return cls(text, problem.answer, problem.answer_type, problem.choices, reasoning)

    @classmethod
    def of_dialogue(cls, record: dict) -> Reply:
        """The last assistant turn of a dialogue record; the turns before it are the context."""
        earlier = [m["content"] for m in record["messages"][1:-1]]
        return cls(
            record["messages"][-1]["content"],
            record["answer"],
            record["answer_type"],
            tuple(record.get("choices") or ()),
            context="\n".join(earlier),
        )

    def score(self, text: str) -> float:
        return check_answer(self.answer, self.answer_type, text, self.choices)


def _mentioned(words, context: str) -> list:
    return [w for w in words if re.search(rf"(?<!\w){re.escape(str(w))}(?!\w)", context, re.I)]


def _wrong_number(rng: random.Random, reply: Reply, far: bool) -> str:
    value = int(reply.answer)
    scale = number_scale(value)

    def fits(x: int) -> bool:
        near = math.exp(-abs(x - value) / scale)
        return x != value and (x >= 0 or value < 0) and (near < 0.3 if far else near >= 0.5)

    numbers = {int(n) for n in re.findall(r"(?<![\w.])-?\d+(?!\w)", reply.context)}
    mentioned = sorted(n for n in numbers if fits(n))
    if mentioned and rng.random() < 0.5:
        return str(rng.choice(mentioned))
    if far:
        delta = rng.randint(math.ceil(1.3 * scale), math.ceil(4 * scale))
    else:
        delta = rng.choice([d for d in _NEAR_STEPS if math.exp(-d / scale) >= 0.5])
    sign = rng.choice((-1, 1))
    if not fits(value + sign * delta):
        sign = -sign
    return str(value + sign * delta)


def _swap(rng: random.Random, items: list[str]) -> list[str]:
    items = list(items)
    while True:
        i, j = rng.sample(range(len(items)), k=2)
        if items[i] != items[j]:
            break
    items[i], items[j] = items[j], items[i]
    return items


def _wrong_sequence(rng: random.Random, reply: Reply, far: bool) -> str:
    answer = reply.answer
    joiner = ", " if ", " in answer else ""
    items = answer.split(", ") if joiner else list(answer)
    if far:
        # The list the wrong way round (unsorted, unreversed), else shuffled, while it
        # still keeps half of the graded overlap.
        candidate = items[::-1]
        for _ in range(20):
            text = joiner.join(candidate)
            if text != answer and closeness(answer, SEQUENCE, text) < 0.5:
                return text
            candidate = rng.sample(items, k=len(items))
    return joiner.join(_swap(rng, items))


def wrong_value(rng: random.Random, reply: Reply, far: bool) -> str:
    """A canonical-looking answer that is not the right one, near or far from it."""
    if reply.answer_type == NUMBER:
        return _wrong_number(rng, reply, far)
    if reply.answer_type == CHOICE:
        others = [c for c in reply.choices if c != reply.answer]
        mentioned = _mentioned(others, reply.context)
        if mentioned and rng.random() < 0.7:
            return rng.choice(mentioned)
        return rng.choice(others)
    return _wrong_sequence(rng, reply, far)


def _replace_last(text: str, answer: str, bad: str) -> str:
    """`text` with its last whole-word mention of `answer` replaced by `bad`."""
    found = list(re.finditer(rf"(?<!\w){re.escape(answer)}(?!\w)", text))
    if not found:
        return text
    m = found[-1]
    return text[: m.start()] + bad + text[m.end() :]


def _slip(line: str, answer: str, bad: str) -> str:
    """The last reasoning line, reaching `bad` instead of `answer`."""
    if re.search(r"= -?\d+\.$", line):  # "1 + 4 = 5." -> "1 + 4 = 7."
        return re.sub(r"= -?\d+\.$", f"= {bad}.", line)
    # A fact line ("Sven lives in Harlow."): its last mention of the answer.
    return _replace_last(line, answer, bad)


def wrong_reply(rng: random.Random, reply: Reply, far: bool | None = None) -> str:
    """A wrong reply in the right reply's form; with CoT the last step slips and ends wrong."""
    if far is None:
        far = reply.answer_type != CHOICE and rng.random() < P_FAR
    bad = wrong_value(rng, reply, far)
    if reply.reasoning:
        lines = list(reply.reasoning)
        lines[-1] = _slip(lines[-1], reply.answer, bad)
        return "\n".join((*lines, f"Answer: {bad}"))
    if reply.text == reply.answer:
        return bad
    return _replace_last(reply.text, reply.answer, bad)


def unhelpful_reply(rng: random.Random, reply: Reply) -> str:
    """A reply that does not answer (after earlier turns, also one that forgot them)."""
    return rng.choice(UNHELPFUL + FORGETFUL if reply.context else UNHELPFUL)


def _messy_list(rng: random.Random, items: list[str]) -> str:
    seps = (",", " ,", ",  ", " , ")
    messy = items[0]
    for item in items[1:]:
        messy += rng.choice(seps) + (item.upper() if rng.random() < 0.3 else item)
    return messy


def _recase(answer: str) -> str:
    return answer.lower() if answer != answer.lower() else answer.upper()


def _cosmetic(rng: random.Random, reply: Reply) -> str:
    """The right reply with a stray space or the answer in another case."""
    a, t = reply.answer, reply.text
    cased = any(ch.isalpha() for ch in a)
    if reply.reasoning:
        body = "\n".join(reply.reasoning)
        options = [f"{body}\nAnswer:  {a}", f"{body}\nAnswer: {a}  "]
        if cased:
            options.append(f"{body}\nAnswer: {_recase(a)}")
        return rng.choice(options)
    if reply.answer_type == SEQUENCE and ", " in a and t == a:
        return rng.choice((_messy_list(rng, a.split(", ")), f"  {a}"))
    options = [f"  {t}", f"{t}   "]
    if " " in t:
        options.append(t.replace(" ", "  ", 1))
    if cased:
        options.append(_replace_last(t, a, _recase(a)))
    return rng.choice(options)


def _messy(rng: random.Random, reply: Reply) -> str:
    """The right answer with hedges, filler, shouting or its reasoning run together."""
    a = reply.answer
    if reply.reasoning:
        # Reasoning run together in lower case, the result at the end; a number is
        # found as the last one, an option must be marked (the reasoning names others).
        squashed = " ".join(line.lower() for line in reply.reasoning)
        if reply.answer_type == NUMBER:
            return f"{squashed} so its {a}"
        return f"{squashed} so answer: {a.lower()}"
    if reply.text != a:  # a sentence (a dialogue's answer)
        base = reply.text.rstrip(".")
        low = base.lower()
        return rng.choice(
            (f"umm... {low} i think??", f"{low} lol", f"{base.upper()}!!", f"i guess {low}...")
        )
    if reply.answer_type == NUMBER:
        return rng.choice(
            (f"umm... i think its {a}??", f"the answer is {a} i guess", f"{a}!!! easy")
        )
    if reply.answer_type == CHOICE:
        return rng.choice(
            (f"umm i think it's {a.lower()}...", f"{a.upper()}!!", f"probably {a.lower()} lol")
        )
    items = a.split(", ") if ", " in a else [a]
    messy = _messy_list(rng, items)
    return rng.choice((f"ok so: {messy}", f"{messy} !!", f"umm: {messy}..."))


def sloppy_reply(rng: random.Random, reply: Reply, messy: bool | None = None) -> str:
    """The right answer, carelessly written: cosmetically or messily (drawn when None)."""
    if messy is None:
        messy = rng.random() < P_MESSY
    return _messy(rng, reply) if messy else _cosmetic(rng, reply)


def wrong(rng: random.Random, problem: Problem, cot: bool) -> str:
    return wrong_reply(rng, Reply.of_problem(problem, cot))


def unhelpful(rng: random.Random, problem: Problem, cot: bool) -> str:
    return unhelpful_reply(rng, Reply.of_problem(problem, cot))


def sloppy(rng: random.Random, problem: Problem, cot: bool) -> str:
    return sloppy_reply(rng, Reply.of_problem(problem, cot))


# kind -> (make, what the checker must say about it).
REJECTIONS = {
    "wrong": (wrong, 0.0),
    "unhelpful": (unhelpful, 0.0),
    "sloppy": (sloppy, 1.0),
}
KIND_SCORE = {kind: score for kind, (_, score) in REJECTIONS.items()}


def consistent(problem: Problem, kind: str, text: str) -> bool:
    """Does `text` score as a `kind` rejection should (sloppy passes, the others fail)?"""
    score = check_answer(problem.answer, problem.answer_type, text, problem.choices)
    return score == KIND_SCORE[kind]
