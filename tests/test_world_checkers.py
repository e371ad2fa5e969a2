"""Checkers: right answers pass however sloppily written; corrupted answers fail, per family."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lmforge.common import LmforgeError
from lmforge.data.world import FAMILIES, check, check_answer, extract_answer
from lmforge.data.world.corrupt import REJECTIONS, consistent
from lmforge.data.world.entities import make_world
from lmforge.data.world.tasks import render, variants
from lmforge.data.world.templates import templates_for


@pytest.fixture(scope="module")
def small_world():
    return make_world(random.Random(5), n_people=20, n_places=5, n_events=6)


def _examples(world, family, n=40):
    """(problem, record) pairs of every difficulty, through seen and held-out templates."""
    fam = FAMILIES[family]
    rng = random.Random(family)
    out = []
    for i in range(n):
        p = fam.generate(rng, world, fam.difficulties[i % len(fam.difficulties)])
        template = rng.choice(templates_for(p.family, p.subtask, heldout=i % 2 == 0))
        for cot in variants(p):
            out.append((p, render(p, template, cot)))
    return out


def _changed_number(answer: str) -> str:
    return str(int(answer) + 1)


def _swapped(answer: str) -> str:
    items = answer.split(", ") if ", " in answer else list(answer)
    for i in range(len(items) - 1):
        if items[i] != items[i + 1]:
            items[i], items[i + 1] = items[i + 1], items[i]
            return (", " if ", " in answer else "").join(items)
    raise AssertionError(f"cannot corrupt {answer!r}")


@pytest.mark.parametrize("family", list(FAMILIES))
def test_generated_answers_pass_and_corrupted_answers_fail(small_world, family):
    examples = _examples(small_world, family)
    assert {p.difficulty for p, _ in examples} == set(FAMILIES[family].difficulties)
    for _, r in examples:
        target = r["messages"][-1]["content"]
        assert check(r, target) == 1.0, r
        assert check(r, f"Answer: {r['answer']}") == 1.0
        assert check(r, "") == 0.0 and check(r, "   \n") == 0.0
        if r["answer_type"] == "number":
            bad = _changed_number(r["answer"])
            assert check(r, bad) == 0.0
            assert check(r, f"{target}\nAnswer: {bad}") == 0.0, "the marked answer wins"
            if r["cot"]:
                # CoT with the right steps but a changed final line still fails.
                lines = target.splitlines()
                assert check(r, "\n".join([*lines[:-1], f"Answer: {bad}"])) == 0.0
        elif r["answer_type"] == "choice":
            other = next(c for c in r["choices"] if c != r["answer"])
            assert check(r, other) == 0.0
            assert check(r, f"{r['answer']} or {other}") == 0.0, "hedging earns nothing"
            assert check(r, f"It is {r['answer'].upper()}.") == 1.0
            if r["cot"]:
                # The hops name other options on the way; only the marked answer counts.
                lines = target.splitlines()
                assert check(r, "\n".join([*lines[:-1], f"Answer: {other}"])) == 0.0
        else:
            assert check(r, _swapped(r["answer"])) == 0.0
            numeric = r["answer"].replace(", ", "").isdigit()
            extra = ", 1000" if numeric else (", extra" if ", " in r["answer"] else "x")
            assert check(r, r["answer"] + extra) == 0.0
            assert check(r, "I don't know.") == 0.0


@pytest.mark.parametrize("family", list(FAMILIES))
def test_preference_rejections_score_as_intended(small_world, family):
    rng = random.Random(11)
    for p, r in _examples(small_world, family, n=30):
        for kind, (make, _) in REJECTIONS.items():
            text = make(rng, p, r["cot"])
            assert consistent(p, kind, text), (kind, text, r["answer"])


def test_number_extraction_is_robust():
    ok = [
        "42",
        "Answer: 42",
        "The answer is 42.",
        "answer:42",
        "Let me see: 40 + 2 = 42",
        "so the total is 42 apples",
        "#### 42",
        "  42  \n",
        "I think 17 at first, but Answer: 42",
    ]
    for text in ok:
        assert check_answer("42", "number", text) == 1.0, text
    for text in ["41", "Answer: 4 2", "forty-two", "Answer: 42\nAnswer: 43", "42.5", ""]:
        assert check_answer("42", "number", text) == 0.0, text
    assert check_answer("1234", "number", "It is 1,234.") == 1.0
    assert check_answer("-5", "number", "Answer: -5") == 1.0
    assert check_answer("3", "number", "5-3 is what? 3") == 1.0


def test_choice_extraction_is_robust():
    cities = ("Harlow", "Oakhurst", "Ashford")
    for text in ["Harlow", "harlow", "Anna lives in Harlow.", "Answer: HARLOW", " harlow!! "]:
        assert check_answer("Harlow", "choice", text, cities) == 1.0, text
    for text in ["Oakhurst", "Harlow or Oakhurst", "Harlowville", "I don't know", ""]:
        assert check_answer("Harlow", "choice", text, cities) == 0.0, text
    # The marked answer decides even when the reasoning mentions other options.
    text = "Not Oakhurst, not Ashford.\nAnswer: Harlow"
    assert check_answer("Harlow", "choice", text, cities) == 1.0
    # Numbers as options match whole numbers only.
    assert check_answer("57", "choice", "157", ("57", "23")) == 0.0
    assert check_answer("57", "choice", "57 is bigger", ("57", "23")) == 1.0
    # Without a closed set the whole (normalised) response must equal the answer.
    assert check_answer("ice cream", "choice", "Ice  cream.") == 1.0
    assert check_answer("ice cream", "choice", "cream") == 0.0


def test_sequence_extraction_is_robust():
    assert check_answer("1, 3, 5", "sequence", "Sorted: 1, 3, 5") == 1.0
    assert check_answer("1, 3, 5", "sequence", "here you go\n1,3 , 5.") == 1.0
    assert check_answer("1, 3, 5", "sequence", "The numbers are 1 then 3 then 5") == 1.0
    assert check_answer("1, 3, 5", "sequence", "1, 5, 3") == 0.0
    assert check_answer("green, blue, red", "sequence", "GREEN blue, Red") == 1.0
    assert check_answer("green, blue, red", "sequence", "The list: green, blue, red") == 1.0
    assert check_answer("green, blue, red", "sequence", "green, blue") == 0.0
    assert check_answer("tac", "sequence", "tac") == 1.0
    assert check_answer("tac", "sequence", "cat") == 0.0


@given(st.integers(min_value=-(10**6), max_value=10**6), st.integers(min_value=1, max_value=99))
def test_number_checker_property(n, delta):
    assert check_answer(str(n), "number", f"Answer: {n}") == 1.0
    assert check_answer(str(n), "number", f"The result is {n}.") == 1.0
    assert check_answer(str(n), "number", f"Answer: {n + delta}") == 0.0


def test_check_needs_an_answer_and_infers_the_type():
    with pytest.raises(LmforgeError, match="answer"):
        check({"messages": []}, "42")
    assert check({"answer": "7"}, "it is 7") == 1.0
    assert check({"answer": "cat", "choices": ["cat", "dog"]}, "a cat") == 1.0
    assert check({"answer": "b, a"}, "b, a") == 1.0
    with pytest.raises(LmforgeError, match="answer_type"):
        check({"answer": "7", "answer_type": "fuzzy"}, "7")


def test_extract_answer_returns_the_canonical_prediction():
    assert extract_answer({"answer": "7", "answer_type": "number"}, "so 3 + 4 = 7") == "7"
    assert extract_answer({"answer": "7", "answer_type": "number"}, "none") is None
    r = {"answer": "cat", "answer_type": "choice", "choices": ["cat", "dog"]}
    assert extract_answer(r, "A DOG.") == "dog"
    assert extract_answer({"answer": "a, b", "answer_type": "sequence"}, "Sorted: A ,B") == "a, b"
