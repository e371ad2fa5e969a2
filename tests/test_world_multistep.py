"""Multi-step families (multi_step, fact_chain), held-out task families, val dialogues.

Generator-level checks over several worlds and seeds: difficulty = steps, every
worked line is true, CoT and direct variants share a problem and both pass
the checker, held-out families go only to heldout_tasks.
"""

from __future__ import annotations

import random
import re

import pytest

from lmforge.data.world import FAMILIES, check, fact_chains
from lmforge.data.world.corrupt import wrong
from lmforge.data.world.dialogues import build_dialogues
from lmforge.data.world.entities import World, make_world
from lmforge.data.world.grammar import a_an, capitalize
from lmforge.data.world.instructions import build_instructions
from lmforge.data.world.multi_step import MAX_VALUE
from lmforge.data.world.seeding import problem_id
from lmforge.data.world.tasks import render, variants
from lmforge.data.world.templates import templates_for

NEW = ("multi_step", "fact_chain")
_LINE = re.compile(r"^(?:(?P<phrase>[A-Z][a-z0-9 ]*): )?(\d+) ([-+*]) (\d+) = (\d+)\.$")


@pytest.fixture(scope="module")
def worlds() -> list[World]:
    return [make_world(random.Random(s), n_people=20, n_places=5, n_events=6) for s in range(3)]


def _problems(world: World, family: str, seed: int, n: int = 200):
    fam = FAMILIES[family]
    rng = random.Random(f"{family}/{seed}")
    return [fam.generate(rng, world, fam.difficulties[i % len(fam.difficulties)]) for i in range(n)]


def _true_facts(world: World) -> set[str]:
    """Every fact sentence a chain may state, built from the entities directly."""
    facts = set()
    for p in world.people:
        facts |= {
            f"{p.name}'s best friend is {p.friend}.",
            f"{p.name} lives in {p.city}.",
            f"{p.name}'s {p.pet} is called {p.pet_name}.",
            f"{p.pet_name} the {p.pet} belongs to {p.name}.",
            f"{p.name} has {a_an(p.pet)}.",
            f"{p.name} is {a_an(p.job)}.",
            f"{p.name}'s favourite food is {p.food}.",
            f"{p.name} is {p.age} years old.",
        }
    facts |= {f"{c.name} is a city in {c.country}." for c in world.places}
    for e in world.events:
        facts |= {
            f"{capitalize(e.name)} was organised by {e.organizer}.",
            f"{capitalize(e.name)} was held in {e.city}.",
        }
    return facts


@pytest.mark.parametrize("family", NEW)
def test_difficulty_is_the_number_of_steps(worlds, family):
    fam = FAMILIES[family]
    assert fam.has_cot and fam.difficulties == ((2, 3, 4) if family == "multi_step" else (2, 3))
    for seed, world in enumerate(worlds):
        problems = _problems(world, family, seed)
        assert {p.difficulty for p in problems} == set(fam.difficulties)
        for p in problems:
            assert len(p.reasoning) == p.difficulty, p
            assert p.answer_type in fam.answer_types


def test_multi_step_lines_are_true_and_numbers_stay_small(worlds):
    subtasks = set()
    for seed, world in enumerate(worlds):
        for p in _problems(world, "multi_step", seed):
            subtasks.add(p.subtask)
            value = None
            for line in p.reasoning:
                m = _LINE.match(line)
                assert m, line
                a, op, k, n = int(m[2]), m[3], int(m[4]), int(m[5])
                assert value is None or a == value, "each step continues from the last result"
                assert n == {"+": a + k, "-": a - k, "*": a * k}[op]
                assert 0 <= n <= MAX_VALUE and k <= 20
                if p.subtask == "chain":
                    word = {"+": ("add",), "-": ("subtract", "take away"), "*": ("multiply",)}
                    named = {"double it": ("*", 2), "triple it": ("*", 3)}
                    phrase = m["phrase"].lower()
                    assert named.get(phrase) == (op, k) or phrase.startswith(word[op]), line
                value = n
            assert p.answer == str(value)
            if p.subtask == "expression":
                expr = p.fields["expr"]
                assert re.fullmatch(r"[\d ()+*-]+", expr)
                # Python's precedence agrees: the parentheses are where they must be.
                assert eval(expr) == int(p.answer), expr  # noqa: S307 (digits and operators only)
                assert expr.count("(") == expr.count(")")
            else:
                assert p.fields["steps"].count(", then ") == p.difficulty - 1
    assert subtasks == {"expression", "chain"}


def test_fact_chain_states_true_connected_facts(worlds):
    subtasks = set()
    for seed, world in enumerate(worlds):
        facts = _true_facts(world)
        for p in _problems(world, "fact_chain", seed):
            subtasks.add(p.subtask)
            assert set(p.reasoning) <= facts, p.reasoning
            for line, nxt in zip(p.reasoning, p.reasoning[1:]):
                # The next fact is about what this one arrived at.
                obj = line.rstrip(".").split()[-1]
                assert nxt.startswith(obj), (line, nxt)
            assert p.reasoning[-1].rstrip(".").endswith(p.answer) or p.answer_type == "number"
            if p.answer_type == "number":
                assert p.reasoning[-1] == re.sub(r"\d+", p.answer, p.reasoning[-1])
            else:
                assert p.answer in p.choices
            question = p.fields["question"]
            assert not re.search(rf"\b{re.escape(p.answer)}\b", question), question
            # The chains the facts family asks at level 3 are never asked again here.
            start, _, path = p.key.split(":")
            assert (start, path) not in (("pet", "owner>home"), ("person", "friend>pet"))
    assert len(subtasks) >= 8


def test_every_fact_chain_path_can_be_phrased():
    for (start, hops), paths in fact_chains.PATHS.items():
        assert paths, (start, hops)
        for path in paths:
            assert len(path) == hops
            assert all(rel in fact_chains._NOUN for rel in path[:-1]), path
            assert path[-1] in fact_chains._QUESTION, path


@pytest.mark.parametrize("family", NEW)
def test_checkers_accept_cot_target_and_direct_answer(worlds, family):
    for seed, world in enumerate(worlds):
        for p in _problems(world, family, seed, n=120):
            for template in templates_for(family, p.subtask, False) + templates_for(
                family, p.subtask, True
            ):
                cot, direct = (render(p, template, c) for c in variants(p))
                assert cot["cot"] and not direct["cot"]
                assert cot["problem_id"] == direct["problem_id"] == problem_id(family, p.key)
                prompt_cot, prompt_direct = (r["messages"][0]["content"] for r in (cot, direct))
                assert prompt_cot.endswith("\nLet's think step by step.")
                assert prompt_direct.split("\n")[:-1] == prompt_cot.split("\n")[:-1]
                want = "number" if p.answer_type == "number" else "answer"
                assert prompt_direct.endswith(f"\nReply with just the {want}.")
                target = cot["messages"][1]["content"]
                assert target == "\n".join((*p.reasoning, f"Answer: {p.answer}"))
                assert direct["messages"][1]["content"] == p.answer
                for r in (cot, direct):
                    assert check(r, target) == 1.0 and check(r, p.answer) == 1.0
                    assert check(r, f"The answer is: {p.answer}") == 1.0
                # A CoT whose last step slips fails, whatever the earlier lines say.
                bad = wrong(random.Random(seed), p, cot=True)
                assert bad.splitlines()[:-2] == list(p.reasoning[:-1])
                assert bad.splitlines()[-2] != p.reasoning[-1]
                assert check(cot, bad) == 0.0 and check(direct, bad) == 0.0


@pytest.mark.parametrize("family", NEW)
def test_same_seed_same_problems(worlds, family):
    a = _problems(worlds[0], family, 7, n=50)
    b = _problems(worlds[0], family, 7, n=50)
    c = _problems(worlds[0], family, 8, n=50)
    assert a == b and a != c


def test_heldout_families_go_only_to_heldout_tasks(worlds):
    quotas = {"train": 30, "val": 5, "test": 10}
    held = {"multi_step", "fact_chain"}
    out = build_instructions(worlds[0], 3, quotas, heldout_tasks=held)
    for name in ("train", "val", "test", "heldout_templates"):
        assert not {r["task"] for r in out[name]} & held, name
        assert not any(r["heldout_task"] for r in out[name])
    rows = out["heldout_tasks"]
    assert {r["task"] for r in rows} == held and all(r["heldout_task"] for r in rows)
    for family in held:
        mine = [r for r in rows if r["task"] == family]
        # Test-sized: quotas["test"] problems, each as a CoT and a direct row.
        assert len(mine) == 2 * quotas["test"]
        assert len({r["problem_id"] for r in mine}) == quotas["test"]
        assert {r["difficulty"] for r in mine} == set(FAMILIES[family].difficulties)
    ids = {r["problem_id"] for r in rows}
    assert not ids & {r["problem_id"] for n in ("train", "val", "test") for r in out[n]}
    # The seen families are drawn exactly as they would be with nothing held out.
    plain = build_instructions(worlds[0], 3, quotas, heldout_tasks=())
    seen_rows = [r for r in plain["train"] if r["task"] not in held]
    assert sorted(map(str, seen_rows)) == sorted(map(str, out["train"]))


def test_val_dialogues_are_disjoint_and_leave_train_and_test_alone(worlds):
    with_val = build_dialogues(worlds[1], 5, n_train=40, n_test=10, n_val=8)
    without = build_dialogues(worlds[1], 5, n_train=40, n_test=10)
    assert len(with_val["val"]) == 8 and without["val"] == []
    assert with_val["train"] == without["train"] and with_val["test"] == without["test"]
    ids = {split: {r["problem_id"] for r in rows} for split, rows in with_val.items()}
    assert not ids["val"] & ids["train"] and not ids["val"] & ids["test"]
    for r in with_val["val"]:
        assert check(r, r["messages"][-1]["content"]) == 1.0
