"""The registry of instruction task families and how a problem becomes an example.

`FAMILIES[name]` describes one family: its generator, difficulty levels,
answer types, template ids (seen and held out) and whether the whole family is
held out of training by default (`heldout_task`). `render` turns a `Problem`
and a template into the JSONL record that `instructions/*.jsonl` hold.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from . import fact_chains, multi_step
from .arithmetic import arithmetic, word_problem
from .entities import World
from .fact_problems import facts
from .labelled_text import sentiment, topic
from .problems import CHOICE, NUMBER, SEQUENCE, Problem
from .puzzles import comparing, counting, reversing, sorting
from .seeding import problem_id
from .templates import COT_INSTRUCTION, DIRECT_INSTRUCTIONS, TEMPLATES, Template


@dataclass(frozen=True)
class TaskFamily:
    name: str
    description: str
    generate: Callable[[random.Random, World, int], Problem]
    difficulties: tuple[int, ...]  # levels the generator accepts
    answer_types: tuple[str, ...]
    has_cot: bool = False  # examples come in a chain-of-thought and a direct variant
    # Held out of training by default: never in train/val (or preferences, or the
    # pretraining text); its problems go to heldout_tasks.jsonl instead.
    heldout_task: bool = False

    def _template_ids(self, heldout: bool) -> tuple[str, ...]:
        return tuple(
            t.id
            for seen, held in TEMPLATES[self.name].values()
            for t in (held if heldout else seen)
        )

    @property
    def templates(self) -> tuple[str, ...]:
        """Ids of the templates used in train/val/test."""
        return self._template_ids(False)

    @property
    def heldout_templates(self) -> tuple[str, ...]:
        """Ids of the templates used only in heldout_templates.jsonl."""
        return self._template_ids(True)


FAMILIES: dict[str, TaskFamily] = {
    f.name: f
    for f in (
        TaskFamily(
            "arithmetic",
            "add, subtract or multiply; difficulty = digits",
            arithmetic,
            (1, 2, 3),
            (NUMBER,),
        ),
        TaskFamily(
            "word_problem",
            "multi-step story problems; difficulty = steps (+distractors)",
            word_problem,
            (1, 2, 3),
            (NUMBER,),
            has_cot=True,
        ),
        TaskFamily(
            "multi_step",
            "chained arithmetic as an expression or as steps; difficulty = operations",
            multi_step.multi_step,
            multi_step.STEPS,
            (NUMBER,),
            has_cot=True,
        ),
        TaskFamily(
            "facts",
            "questions about the world's people and events (1 direct, 3 two-hop)",
            facts,
            (1, 2, 3),
            (CHOICE, NUMBER),
        ),
        TaskFamily(
            "fact_chain",
            "multi-hop questions about people, pets, cities, events; difficulty = hops",
            fact_chains.fact_chain,
            fact_chains.HOPS,
            (CHOICE, NUMBER),
            has_cot=True,
        ),
        TaskFamily(
            "counting",
            "count letters, words or list items; difficulty = length",
            counting,
            (1, 2, 3),
            (NUMBER,),
        ),
        TaskFamily(
            "reversing",
            "reverse a word list or spell a word backwards",
            reversing,
            (1, 2, 3),
            (SEQUENCE,),
        ),
        TaskFamily(
            "sorting",
            "sort numbers up/down or words alphabetically",
            sorting,
            (1, 2, 3),
            (SEQUENCE,),
        ),
        TaskFamily(
            "comparing",
            "larger/smaller number, longer word; 3 = older person",
            comparing,
            (1, 2, 3),
            (CHOICE,),
            # Held out: every skill it needs is trained elsewhere (ordering numbers in
            # sorting, word lengths in counting, ages in facts) but the task is not.
            heldout_task=True,
        ),
        TaskFamily(
            "sentiment",
            "sentiment of a generated review (2 contrast, 3 negation)",
            sentiment,
            (1, 2, 3),
            (CHOICE,),
        ),
        TaskFamily(
            "topic",
            "topic of generated sentences (3 adds another topic's cue)",
            topic,
            (1, 2, 3),
            (CHOICE,),
        ),
    )
}


# The families held out of training unless a WorldConfig says otherwise.
DEFAULT_HELDOUT_TASKS = tuple(name for name, fam in FAMILIES.items() if fam.heldout_task)


def variants(problem: Problem) -> tuple[bool, ...]:
    """The `cot` values a problem is rendered with: both when it has reasoning, else only False."""
    return (True, False) if problem.reasoning else (False,)


def render(
    problem: Problem, template: Template, cot: bool = False, heldout_task: bool = False
) -> dict:
    """The instruction record for `problem` through `template` (CoT or direct)."""
    prompt = template.render(problem.fields)
    target = problem.answer
    if problem.reasoning:
        direct = DIRECT_INSTRUCTIONS[problem.answer_type]
        prompt = f"{prompt}\n{COT_INSTRUCTION if cot else direct}"
        target = problem.cot_target() if cot else problem.answer
    record = {
        "messages": [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": target},
        ],
        "task": problem.family,
        "subtask": problem.subtask,
        "template": template.id,
        "problem_id": problem_id(problem.family, problem.key),
        "difficulty": problem.difficulty,
        "cot": cot,
        "heldout_task": heldout_task,
        "answer": problem.answer,
        "answer_type": problem.answer_type,
    }
    if problem.choices:
        record["choices"] = list(problem.choices)
    return record
