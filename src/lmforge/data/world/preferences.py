"""Preference pairs and rankings, rated like LLaMA-2's, from train/val problems and dialogues.

**Pairs** (preferences/train.jsonl, val.jsonl), one JSON object a line:

    {"prompt": [messages], "chosen": str, "rejected": str,
     "rating": "significantly_better"|"better"|"slightly_better"|"negligibly_better",
     "rejected_kind": "wrong"|"unhelpful"|"sloppy",
     "graded": {"chosen": 1.0, "rejected": float},
     task, subtask, template, problem_id, difficulty, cot, heldout_task,
     answer, answer_type[, choices]}

The prompt is the chat before the reply: one user turn for a task problem, or
for a multi-turn pair (one pair in `DIALOGUE_SHARE`, task "dialogue", subtask
the dialogue kind) the system prompt and every turn before the last answer,
which depends on an earlier turn. `chosen` is the world's right reply;
`rejected` a worse one (corrupt.py), drawn `wrong` : `unhelpful` : `sloppy` =
`KIND_WEIGHTS`. `graded` holds both replies' `check_graded` scores (graded.py);
the task fields let a checker score any other response to the prompt. There is
no `margin`: readers map the rating to one (LLaMA-2's table: 1, 2/3, 1/3, 0).

**Rating rules** — how much better the chosen reply is for a user (`rate`):

* ``significantly_better``: the rejected reply gives no answer (a refusal, a
  dodge) or a wrong answer far from the right one (graded closeness below
  `NEAR`: another option, a number far off for its size, a list reversed);
* ``better``: a wrong answer close to the right one (closeness at least `NEAR`:
  a number off by a little, two list items swapped) — wrong however close, so
  never rated lower than this;
* ``slightly_better``: the right answer, messily written (hedges, filler,
  shouting, reasoning run together): graded gap of at least `SLIGHT`;
* ``negligibly_better``: the right answer with cosmetic faults only (a stray
  space, the answer in another case): graded gap below `SLIGHT`.

**Mix.** `KIND_WEIGHTS` (wrong 46%, unhelpful 15%, sloppy 38%) and corrupt.py's
shares (P_FAR of wrong numbers and lists far off, P_MESSY of sloppy replies
messy) give, on the small world (seed 0, 1500 train pairs): significantly
better 42% (unhelpful 17%, wrong 25%), better 20%, slightly better 20%,
negligibly better 18% — every level present and the strong ones common, as in
LLaMA-2's Meta helpfulness data (Touvron et al. 2023, Table 26). Spotting a
wrong answer (every "better" pair, most "significantly better" ones) needs the
task solved; the sloppy ones only need the form read. Nothing hard is left out.

**Rankings** (preferences/rankings_train.jsonl, rankings_val.jsonl):

    {"prompt": [messages], "ranking": [best, ..., worst], "kinds": [...],
     "graded": [scores], task fields as above}

3 or 4 replies per prompt, best first: the right one, one sloppy, one wrong or
unhelpful, and (for four) one more of another graded score; `kinds` names each
("right", "sloppy", "wrong", "unhelpful"); the order is strictly decreasing in
`graded`, so every one of the C(K, 2) pairs is a real preference.

Held-out families are left out (preference data is training data); problems
and dialogues come from the train split for train files, val for val.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Collection
from dataclasses import dataclass

from .checkers import check
from .corrupt import KIND_SCORE, Reply, sloppy_reply, unhelpful_reply, wrong_reply
from .dialogues import build_dialogues
from .entities import World
from .graded import check_graded, example_closeness
from .sampling import sample_problems, spread
from .seeding import component_rng
from .tasks import DEFAULT_HELDOUT_TASKS, FAMILIES, render
from .templates import templates_for

RATINGS = ("significantly_better", "better", "slightly_better", "negligibly_better")
# Share of each rejection kind (wrong answers dominate: they carry the signal).
KIND_WEIGHTS = {"wrong": 6, "unhelpful": 2, "sloppy": 5}
DIALOGUE_SHARE = 6  # one pair (and one ranking) in six is multi-turn
NEAR = 0.5  # closeness from which a wrong answer is a near miss ("better")
SLIGHT = 0.125  # graded gap from which a sloppy answer is "slightly" (not negligibly) worse
_TRIES = 50

_MAKERS: dict[str, Callable[[random.Random, Reply], str]] = {
    "wrong": wrong_reply,
    "unhelpful": unhelpful_reply,
    "sloppy": sloppy_reply,
}


@dataclass(frozen=True)
class _Item:
    """One prompt to build replies for: the chat so far, the right reply, the task fields."""

    prompt: list[dict]
    reply: Reply
    fields: dict  # what a checker needs (task, answer, answer_type, choices, cot, ...)


def rate(example: dict, chosen: str, rejected: str) -> str:
    """The rating of a pair by the rules above (chosen must be right)."""
    if check(example, rejected) == 1.0:
        gap = check_graded(example, chosen) - check_graded(example, rejected)
        return "slightly_better" if gap >= SLIGHT else "negligibly_better"
    near = example_closeness(example, rejected) >= NEAR
    return "better" if near else "significantly_better"


def _graded(fields: dict, text: str) -> float:
    return round(check_graded(fields, text), 4)


def _problem_items(
    world: World, seed: int, quotas: dict[str, int], heldout: Collection[str], stream: str
) -> dict[str, list[_Item]]:
    out: dict[str, list[_Item]] = {split: [] for split in quotas}
    fams = [f for f in FAMILIES.values() if f.name not in heldout]
    shares = {split: spread(n, len(fams)) for split, n in quotas.items()}
    for i, fam in enumerate(fams):
        wanted = {split: shares[split][i] for split in quotas}
        problems = sample_problems(fam, world, seed, wanted, stream=stream)
        for split in quotas:
            # One stream per split: asking for more train pairs leaves val as it was.
            rng = component_rng(seed, f"{stream}/render/{fam.name}/{split}")
            for p in problems[split]:
                template = rng.choice(templates_for(p.family, p.subtask, heldout=False))
                cot = bool(p.reasoning) and rng.random() < 0.5
                example = render(p, template, cot)
                fields = {k: v for k, v in example.items() if k != "messages"}
                out[split].append(_Item(example["messages"][:-1], Reply.of_problem(p, cot), fields))
    return out


def _dialogue_fields(record: dict) -> dict:
    """A dialogue's task fields, in the order instruction records have them."""
    fields = {
        "task": record["task"],
        "subtask": record["subtask"],
        "template": record["template"],
        "problem_id": record["problem_id"],
        "difficulty": record["difficulty"],
        "cot": False,
        "heldout_task": False,
        "answer": record["answer"],
        "answer_type": record["answer_type"],
    }
    if "choices" in record:
        fields["choices"] = record["choices"]
    return fields


def _items(
    world: World, seed: int, n_train: int, n_val: int, heldout: Collection[str], stream: str
) -> dict[str, list[_Item]]:
    """Problem prompts of the seen families, then multi-turn ones, per split."""
    n_dialogue = {"train": n_train // DIALOGUE_SHARE, "val": n_val // DIALOGUE_SHARE}
    rest = {"train": n_train - n_dialogue["train"], "val": n_val - n_dialogue["val"]}
    out = _problem_items(world, seed, rest, heldout, stream)
    dialogues = build_dialogues(
        world, seed, n_dialogue["train"], 0, n_dialogue["val"], stream=f"{stream}/dialogues"
    )
    for split in out:
        for r in dialogues[split]:
            out[split].append(_Item(r["messages"][:-1], Reply.of_dialogue(r), _dialogue_fields(r)))
    return out


def _draw(item: _Item, kind: str, make: Callable[[], str]) -> str:
    """A `kind` reply that the checker and the graded score judge as that kind should be."""
    for _ in range(_TRIES):
        text = make()
        if (
            text != item.reply.text
            and check(item.fields, text) == KIND_SCORE[kind]
            and check_graded(item.fields, text) < 1.0
        ):
            return text
    raise AssertionError(f"no {kind} reply found for {item.fields} (last: {text!r})")


def _pair(rng: random.Random, item: _Item) -> dict:
    kind = rng.choices(list(KIND_WEIGHTS), weights=list(KIND_WEIGHTS.values()))[0]
    rejected = _draw(item, kind, lambda: _MAKERS[kind](rng, item.reply))
    chosen = item.reply.text
    record = {
        "prompt": item.prompt,
        "chosen": chosen,
        "rejected": rejected,
        "rating": rate(item.fields, chosen, rejected),
        "rejected_kind": kind,
        "graded": {
            "chosen": _graded(item.fields, chosen),
            "rejected": _graded(item.fields, rejected),
        },
    }
    record.update(item.fields)
    return record


def _ranking(rng: random.Random, item: _Item) -> dict:
    r = item.reply
    pool = {
        "cosmetic": ("sloppy", lambda: sloppy_reply(rng, r, messy=False)),
        "messy": ("sloppy", lambda: sloppy_reply(rng, r, messy=True)),
        "near": ("wrong", lambda: wrong_reply(rng, r, far=False)),
        "far": ("wrong", lambda: wrong_reply(rng, r, far=True)),
        "unhelpful": ("unhelpful", lambda: unhelpful_reply(rng, r)),
    }
    size = rng.choice((3, 4))
    order = [rng.choice(("cosmetic", "messy")), rng.choice(("near", "far", "unhelpful"))]
    extra = [name for name in pool if name not in order]
    rng.shuffle(extra)
    picked = [("right", r.text, _graded(item.fields, r.text))]
    for name in order + extra:
        if len(picked) == size:
            break
        kind, make = pool[name]
        text = _draw(item, kind, make)
        score = _graded(item.fields, text)
        # Only distinct scores: each pair of the ranking is then a strict preference.
        if all(score != s for _, _, s in picked) and all(text != t for _, t, _ in picked):
            picked.append((kind, text, score))
    picked.sort(key=lambda p: -p[2])
    record = {
        "prompt": item.prompt,
        "ranking": [t for _, t, _ in picked],
        "kinds": [k for k, _, _ in picked],
        "graded": [s for _, _, s in picked],
    }
    record.update(item.fields)
    return record


def _build(
    world: World,
    seed: int,
    n_train: int,
    n_val: int,
    heldout: Collection[str],
    stream: str,
    make: Callable[[random.Random, _Item], dict],
) -> dict[str, list[dict]]:
    items = _items(world, seed, n_train, n_val, heldout, stream)
    out: dict[str, list[dict]] = {}
    for split, split_items in items.items():
        rng = component_rng(seed, f"{stream}/responses/{split}")
        out[split] = [make(rng, item) for item in split_items]
        component_rng(seed, f"{stream}/shuffle/{split}").shuffle(out[split])
    return out


def build_preferences(
    world: World,
    seed: int,
    n_train: int,
    n_val: int,
    heldout_tasks: Collection[str] = DEFAULT_HELDOUT_TASKS,
) -> dict[str, list[dict]]:
    """{"train", "val"}: `n_train` / `n_val` rated pairs (one in DIALOGUE_SHARE multi-turn)."""
    return _build(world, seed, n_train, n_val, heldout_tasks, "preferences", _pair)


def build_rankings(
    world: World,
    seed: int,
    n_train: int,
    n_val: int,
    heldout_tasks: Collection[str] = DEFAULT_HELDOUT_TASKS,
) -> dict[str, list[dict]]:
    """{"train", "val"}: `n_train` / `n_val` rankings of 3-4 replies, best first."""
    return _build(world, seed, n_train, n_val, heldout_tasks, "rankings", _ranking)


def pair_issues(record: dict) -> list[str]:
    """What is inconsistent in a preference pair record (empty when it is sound)."""
    issues = []
    chosen, rejected, kind = record["chosen"], record["rejected"], record.get("rejected_kind")
    if check(record, chosen) != 1.0:
        issues.append("chosen fails its checker")
    if kind not in KIND_SCORE:
        issues.append(f"rejected_kind {kind!r} is not one of {', '.join(KIND_SCORE)}")
    elif check(record, rejected) != KIND_SCORE[kind]:
        issues.append(f"the {kind} rejection scores {check(record, rejected)} on its checker")
    graded = {"chosen": _graded(record, chosen), "rejected": _graded(record, rejected)}
    if record.get("graded") != graded:
        issues.append(f"graded {record.get('graded')} differs from check_graded's {graded}")
    if graded["chosen"] != 1.0 or graded["rejected"] >= graded["chosen"]:
        issues.append(f"graded {graded}: chosen must score 1.0 and rejected less")
    if record.get("rating") != rate(record, chosen, rejected):
        issues.append(
            f"rating {record.get('rating')!r}; the rules say {rate(record, chosen, rejected)!r}"
        )
    if "margin" in record:
        issues.append("carries a margin (the rating decides it)")
    return issues


def ranking_issues(record: dict) -> list[str]:
    """What is inconsistent in a ranking record (empty when it is sound)."""
    ranking, kinds = record["ranking"], record.get("kinds", [])
    issues = []
    if not 3 <= len(ranking) <= 4 or len(kinds) != len(ranking):
        issues.append(f"{len(ranking)} replies and {len(kinds)} kinds; want 3-4 of each")
    graded = [_graded(record, text) for text in ranking]
    if record.get("graded") != graded:
        issues.append(f"graded {record.get('graded')} differs from check_graded's {graded}")
    if any(a < b for a, b in zip(graded, graded[1:])):
        issues.append(f"graded {graded} increases down the ranking")
    for kind, text in zip(kinds, ranking):
        want = 1.0 if kind == "right" else KIND_SCORE.get(kind)
        if check(record, text) != want:
            issues.append(f"a {kind!r} reply scores {check(record, text)} on its checker")
    return issues
