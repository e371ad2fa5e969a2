"""The world's rated preference pairs, multi-turn pairs, rankings and the graded checker."""

from __future__ import annotations

import hashlib
import json
import random
from itertools import combinations
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lmforge.common import LmforgeError
from lmforge.data.world import FAMILIES, WorldConfig, build_world, check, checkers
from lmforge.data.world.corrupt import Reply, sloppy_reply, unhelpful_reply, wrong_reply
from lmforge.data.world.dialogues import KINDS, make_dialogue
from lmforge.data.world.entities import make_world
from lmforge.data.world.graded import PENALTIES, check_graded, example_faults
from lmforge.data.world.preferences import (
    DIALOGUE_SHARE,
    RATINGS,
    pair_issues,
    ranking_issues,
    rate,
)
from lmforge.data.world.tasks import render, variants
from lmforge.data.world.templates import templates_for

TINY = dict(
    people=20,
    places=5,
    events=6,
    pretrain_chars=5_000,
    train_per_family=8,
    val_per_family=3,
    test_per_family=6,
    dialogues_train=6,
    dialogues_val=3,
    dialogues_test=6,
    preferences_train=120,
    preferences_val=30,
    rankings_train=30,
    rankings_val=10,
    classification_train_per_label=4,
    classification_test_per_label=4,
)
PAIR_KEYS = ["prompt", "chosen", "rejected", "rating", "rejected_kind", "graded"]
TASK_KEYS = ["task", "subtask", "template", "problem_id", "difficulty", "cot", "heldout_task"]
NUMBER = {"answer": "40", "answer_type": "number"}
CITY = {"answer": "Harlow", "answer_type": "choice", "choices": ["Harlow", "Oakhurst", "Ashford"]}
WORDS = {"answer": "apple, river, chair, garden", "answer_type": "sequence"}


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wp") / "w"
    build_world(WorldConfig(out=str(out), seed=3, **TINY))
    return out


@pytest.fixture(scope="module")
def world():
    return make_world(random.Random(5), n_people=20, n_places=5, n_events=6)


# --- the graded checker ---------------------------------------------------------------


def test_graded_numbers_are_monotone_in_closeness():
    scores = [check_graded(NUMBER, t) for t in ("40", "41", "43", "60", "400")]
    assert scores[0] == 1.0
    assert scores == sorted(scores, reverse=True) and len(set(scores)) == 5
    assert 0 < scores[-1] < 0.01
    assert check_graded(NUMBER, "Answer: 41") == check_graded(NUMBER, "41")
    # Closeness scales with the answer: off by 10 is a near miss of 2000, not of 40.
    year = {"answer": "2000", "answer_type": "number"}
    assert check_graded(year, "2010") > check_graded(NUMBER, "50")
    for text in ("I don't know.", "", "   ", "forty"):
        assert check_graded(NUMBER, text) == 0.0


def test_graded_right_answers_beat_wrong_ones_and_clean_beats_sloppy():
    sloppy = ["40   ", "umm... i think its 40??", "the answer is 40 i guess", "40!!! easy"]
    for text in sloppy:
        assert check(NUMBER, text) == 1.0
        assert 0.5 < check_graded(NUMBER, text) < 1.0, text
    assert check_graded(NUMBER, "40   ") > check_graded(NUMBER, "umm... i think its 40??")
    assert min(check_graded(NUMBER, t) for t in sloppy) > check_graded(NUMBER, "41")
    # Clean forms score exactly 1.
    for text in ("40", "Answer: 40", "The answer is 40.", "10 * 4 = 40.\nAnswer: 40"):
        assert check_graded(NUMBER, text) == 1.0, text


def test_graded_choices_sequences_and_format():
    assert check_graded(CITY, "Harlow") == 1.0 == check_graded(CITY, "Anna lives in Harlow.")
    assert check_graded(CITY, "Oakhurst") == 0.0 == check_graded(CITY, "Harlow or Oakhurst")
    assert 0.9 <= check_graded(CITY, "harlow") < 1.0  # case is cosmetic
    assert 0.5 < check_graded(CITY, "probably harlow lol") < 0.9
    swapped, reversed_ = "apple, chair, river, garden", "garden, chair, river, apple"
    assert 1.0 > check_graded(WORDS, swapped) > check_graded(WORDS, reversed_) > 0
    assert check_graded(WORDS, "apple,river , chair, garden") == 1.0 - PENALTIES["spacing"]
    assert check_graded(WORDS, "apple, river") < check_graded(WORDS, "apple, river, chair")
    # One word spelt backwards is compared by its letters.
    word = {"answer": "elppa", "answer_type": "sequence"}
    assert check_graded(word, "elpap") > check_graded(word, "apple") > 0
    # A CoT reply must end with its answer line; run together it loses form, not credit.
    cot = {**NUMBER, "cot": True}
    assert check_graded(cot, "4 * 10 = 40.\nAnswer: 40") == 1.0
    assert example_faults(cot, "4 * 10 = 40. so its 40") == ["answer_line"]
    assert checkers.check_graded(CITY, "harlow") == check_graded(CITY, "harlow")
    with pytest.raises(LmforgeError, match="answer"):
        check_graded({"messages": []}, "40")
    with pytest.raises(LmforgeError, match="answer_type"):
        check_graded({"answer": "1", "answer_type": "fuzzy"}, "1")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=40), st.sampled_from([NUMBER, CITY, WORDS]))
def test_graded_is_a_bounded_refinement_of_check(text, example):
    score = check_graded(example, text)
    assert 0.0 <= score <= 1.0
    assert score == check_graded(example, text)  # deterministic
    if check(example, text) == 1.0:
        assert score > 0.5
    else:
        assert score < 0.5
    if score == 1.0:
        assert check(example, text) == 1.0


def _examples(world, n=12):
    for family in FAMILIES.values():
        rng = random.Random(family.name)
        for i in range(n):
            p = family.generate(rng, world, family.difficulties[i % len(family.difficulties)])
            template = rng.choice(templates_for(p.family, p.subtask, heldout=i % 2 == 0))
            for cot in variants(p):
                yield p, cot, render(p, template, cot)


def test_every_world_target_is_clean_and_every_corruption_scores_as_meant(world):
    rng = random.Random(0)
    for p, cot, r in _examples(world):
        target = r["messages"][-1]["content"]
        assert check_graded(r, target) == 1.0, (target, example_faults(r, target))
        reply = Reply.of_problem(p, cot)
        for _ in range(3):
            for messy in (False, True):
                text = sloppy_reply(rng, reply, messy=messy)
                assert check(r, text) == 1.0 and check_graded(r, text) < 1.0, text
                cosmetic = set(example_faults(r, text)) <= {"spacing", "case"}
                assert cosmetic != messy, (text, example_faults(r, text))
            for far in (False, True):
                text = wrong_reply(rng, reply, far=far)
                assert check(r, text) == 0.0, text
            assert check_graded(r, unhelpful_reply(rng, reply)) == 0.0


def test_dialogue_replies_are_clean_and_their_corruptions_score_as_meant(world):
    rng = random.Random(1)
    for i in range(120):
        d = make_dialogue(rng, world, KINDS[i % len(KINDS)], 1 + i % 3)
        reply = Reply.of_dialogue(d)
        assert check_graded(d, reply.text) == 1.0, reply.text
        assert check(d, sloppy_reply(rng, reply)) == 1.0
        assert check(d, wrong_reply(rng, reply)) == 0.0


# --- the rating rules -----------------------------------------------------------------


def test_rating_rules():
    assert rate(NUMBER, "40", "I don't know.") == "significantly_better"
    assert rate(NUMBER, "40", "400") == "significantly_better"  # far off
    assert rate(NUMBER, "40", "41") == "better"  # wrong however close
    assert rate(NUMBER, "40", "umm... i think its 40??") == "slightly_better"
    assert rate(NUMBER, "40", "40   ") == "negligibly_better"
    assert rate(CITY, "Harlow", "Oakhurst") == "significantly_better"  # an option is right or not
    assert rate(CITY, "Harlow", "HARLOW!!") == "slightly_better"
    assert rate(CITY, "Harlow", "  harlow") == "negligibly_better"
    assert rate(WORDS, WORDS["answer"], "apple, chair, river, garden") == "better"
    assert rate(WORDS, WORDS["answer"], "garden, chair, river, apple") == "significantly_better"


# --- the files ------------------------------------------------------------------------


def test_pair_records(tiny):
    for split, n in (("train", 120), ("val", 30)):
        rows = _jsonl(tiny / "preferences" / f"{split}.jsonl")
        assert len(rows) == n
        for r in rows:
            assert list(r)[: len(PAIR_KEYS)] == PAIR_KEYS and "margin" not in r
            assert set(TASK_KEYS + ["answer", "answer_type"]) <= set(r)
            assert r["rating"] in RATINGS and not r["heldout_task"]
            assert r["graded"] == {
                "chosen": 1.0,
                "rejected": round(check_graded(r, r["rejected"]), 4),
            }
            assert pair_issues(r) == []
            assert r["prompt"][-1]["role"] == "user"
        dialogue = [r for r in rows if r["task"] == "dialogue"]
        assert len(dialogue) == n // DIALOGUE_SHARE
    rows = _jsonl(tiny / "preferences" / "train.jsonl")
    assert {r["rating"] for r in rows} == set(RATINGS)
    assert {r["rejected_kind"] for r in rows} == {"wrong", "unhelpful", "sloppy"}
    instr_test = {r["problem_id"] for r in _jsonl(tiny / "instructions" / "test.jsonl")}
    dial_test = {r["problem_id"] for r in _jsonl(tiny / "dialogues" / "test.jsonl")}
    val = _jsonl(tiny / "preferences" / "val.jsonl")
    ids = {split: {r["problem_id"] for r in rs} for split, rs in (("train", rows), ("val", val))}
    assert not ids["train"] & ids["val"] and not (ids["train"] | ids["val"]) & instr_test
    assert not (ids["train"] | ids["val"]) & dial_test


def test_multi_turn_pairs_carry_the_whole_chat(tiny):
    rows = [r for r in _jsonl(tiny / "preferences" / "train.jsonl") if r["task"] == "dialogue"]
    assert len({r["subtask"] for r in rows}) >= 4
    for r in rows:
        roles = [m["role"] for m in r["prompt"]]
        assert roles[0] == "system" and roles[-1] == "user" and roles.count("user") >= 2
        assert roles[1:] == ["user", "assistant"] * (len(roles) // 2 - 1) + ["user"]
        assert r["subtask"] in KINDS and check(r, r["chosen"]) == 1.0
        assert r["cot"] is False


def test_rankings(tiny):
    for split, n in (("train", 30), ("val", 10)):
        rows = _jsonl(tiny / "preferences" / f"rankings_{split}.jsonl")
        assert len(rows) == n
        for r in rows:
            assert list(r)[:4] == ["prompt", "ranking", "kinds", "graded"]
            assert 3 <= len(r["ranking"]) <= 4 and r["kinds"][0] == "right"
            assert r["graded"][0] == 1.0
            assert all(a > b for a, b in zip(r["graded"], r["graded"][1:]))
            assert "sloppy" in r["kinds"] and {"wrong", "unhelpful"} & set(r["kinds"])
            assert ranking_issues(r) == []
            for i, j in combinations(range(len(r["ranking"])), 2):
                assert check_graded(r, r["ranking"][i]) > check_graded(r, r["ranking"][j])
    rows = _jsonl(tiny / "preferences" / "rankings_train.jsonl")
    assert {len(r["ranking"]) for r in rows} == {3, 4}
    assert any(r["task"] == "dialogue" for r in rows)
    manifest = json.loads((tiny / "manifest.json").read_text())
    assert manifest["generator_version"] == 5
    assert manifest["files"]["preferences/rankings_val.jsonl"]["records"] == 10
    readme = (tiny / "README.md").read_text()
    assert "rankings_train.jsonl" in readme and "negligibly" in readme


def test_issues_catch_inconsistent_records(tiny):
    pair = _jsonl(tiny / "preferences" / "train.jsonl")[0]
    other = next(x for x in RATINGS if x != pair["rating"])
    assert pair_issues({**pair, "rating": other})
    assert pair_issues({**pair, "margin": 1.0})
    assert pair_issues({**pair, "rejected": pair["chosen"]})
    assert pair_issues({**pair, "graded": {"chosen": 1.0, "rejected": 0.5}})
    assert pair_issues({**pair, "rejected_kind": "odd"})
    ranking = _jsonl(tiny / "preferences" / "rankings_train.jsonl")[0]
    flipped = {**ranking, "ranking": ranking["ranking"][::-1], "graded": ranking["graded"][::-1]}
    assert any("increases" in i for i in ranking_issues(flipped))
    assert ranking_issues({**ranking, "ranking": ranking["ranking"][:2]})


def test_streams_are_separate(tmp_path, tiny):
    """Rankings and pair counts never shift another file's bytes; same seed, same bytes."""
    out = tmp_path / "w"
    build_world(WorldConfig(out=str(out), seed=3, **{**TINY, "rankings_train": 7}))
    for rel in ("preferences/train.jsonl", "preferences/val.jsonl", "dialogues/train.jsonl"):
        assert _sha(out / rel) == _sha(tiny / rel), rel
    assert _sha(out / "preferences/rankings_val.jsonl") == _sha(
        tiny / "preferences/rankings_val.jsonl"
    )
    more = tmp_path / "m"
    build_world(WorldConfig(out=str(more), seed=3, **{**TINY, "preferences_train": 60}))
    for rel in ("instructions/train.jsonl", "dialogues/train.jsonl", "pretrain/train.txt"):
        assert _sha(more / rel) == _sha(tiny / rel), rel
    assert _sha(more / "preferences/rankings_train.jsonl") == _sha(
        tiny / "preferences/rankings_train.jsonl"
    )


def test_the_preference_reader_maps_ratings_and_expands_rankings(tiny):
    prefs = pytest.importorskip("lmforge.data.preferences")
    read = prefs.read_preferences([str(tiny / "preferences" / "train.jsonl")])
    table = {"significantly_better": 1.0, "better": 2 / 3, "slightly_better": 1 / 3}
    for pair in read.pairs:
        assert pair.margin == pytest.approx(table.get(pair.rating, 0.0))
        assert pair.meta["rejected_kind"] in ("wrong", "unhelpful", "sloppy")
    assert len(read.pairs) == 120 and read.identical == 0
    rows = _jsonl(tiny / "preferences" / "rankings_train.jsonl")
    ranked = prefs.read_preferences([str(tiny / "preferences" / "rankings_train.jsonl")])
    assert len(ranked.pairs) == sum(len(r["ranking"]) * (len(r["ranking"]) - 1) // 2 for r in rows)
