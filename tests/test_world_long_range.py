"""The world's LAMBADA-style passages and TriviaQA-style questions: format, splits, answers."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import pytest

from lmforge.data.world import WorldConfig, build_world
from lmforge.data.world.entities import make_world
from lmforge.data.world.long_range import KINDS, MAX_DISTANCE, build_long_range, passage
from lmforge.data.world.seeding import component_rng, split_of
from lmforge.data.world.trivia import FACTS_SPLIT, normalize_answer, number_words, split_of_fact
from lmforge.prompting.cloze_data import mention_distance, split_last_word

TINY = dict(
    people=20, places=5, events=6, pretrain_chars=20_000, train_per_family=60, val_per_family=3,
    test_per_family=30, dialogues_train=10, dialogues_test=4, preferences_train=10,
    preferences_val=4, classification_train_per_label=4, classification_test_per_label=4,
)  # fmt: skip


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("lr") / "world"
    build_world(WorldConfig(out=str(out), **TINY))
    return out


def _mentions(text: str, word: str) -> int:
    return len(re.findall(rf"(?<!\w){re.escape(word)}(?!\w)", text))


def test_passages_end_on_an_answer_stated_once_far_back(world):
    people = {p["name"]: p for p in json.loads((world / "world.json").read_text())["people"]}
    cands = json.loads((world / "long_range" / "candidates.json").read_text())
    assert set(cands) == set(KINDS)
    for split, n in (("train", 30), ("test", 60)):
        rows = _jsonl(world / "long_range" / f"{split}.jsonl")
        assert len(rows) == n
        # Balanced: every distance 1..6 equally often, every kind at several distances.
        assert Counter(r["distance"] for r in rows) == {d: n // 6 for d in range(1, 7)}
        assert set(r["kind"] for r in rows) == set(KINDS)
        for r in rows:
            text, answer = r["text"], r["answer"]
            context, last = split_last_word(text, "x")
            assert last == answer and not text.endswith(".")
            assert _mentions(context, answer) == 1, text  # stated once, before the blank
            assert answer in cands[r["kind"]]
            # The recorded distances are what a reader measures from the text alone.
            assert mention_distance(context, answer) == (r["distance"], r["distance_words"])
            # The answer is not a fact of the passage's person: only the passage says it.
            p = people[r["person"]]
            assert answer not in (p["name"], p["friend"], p["pet_name"], p["city"])


def test_long_range_splits_share_no_pairing(world):
    train = _jsonl(world / "long_range" / "train.jsonl")
    test = _jsonl(world / "long_range" / "test.jsonl")
    assert not {r["problem_id"] for r in train} & {r["problem_id"] for r in test}
    assert not {r["text"] for r in train} & {r["text"] for r in test}
    for r in test:
        assert split_of(0, "long_range", f"{r['kind']}:{r['person']}:{r['answer']}") == "test"


def test_lures_name_another_thing_of_the_kind():
    w = make_world(component_rng(0, "entities"), 20, 5, 6)
    rng = component_rng(0, "t")
    ps = [passage(rng, w, kind, 6) for kind in KINDS for _ in range(20)]
    assert sum(p.lures for p in ps) > 0 and all(0 <= p.lures <= 5 for p in ps)
    with pytest.raises(ValueError, match="max_distance"):
        build_long_range(w, 0, 1, 1, max_distance=11)
    assert MAX_DISTANCE == 6


def test_trivia_records_are_triviaqa_lines_in_their_facts_split(world):
    train = _jsonl(world / "trivia" / "train.jsonl")
    test = _jsonl(world / "trivia" / "test.jsonl")
    assert test and train and len(test) <= 60 and len(train) <= 60
    assert not {r["QuestionId"] for r in train} & {r["QuestionId"] for r in test}
    for r in test:
        a = r["Answer"]
        assert a["Value"] == a["Aliases"][0] and a["NormalizedValue"] == normalize_answer(
            a["Value"]
        )
        assert a["NormalizedAliases"] == list(dict.fromkeys(map(normalize_answer, a["Aliases"])))
        attr = r["attribute"]
        key = f"{attr}:" + r["QuestionId"].removeprefix(f"world-{attr}-").replace("_", " ")
        assert split_of_fact(0, attr, key) == "test"
        if attr in FACTS_SPLIT:  # the facts family's split: its Q&A lines are train only
            assert split_of(0, "facts", key) == "test"
        assert r["Question"].endswith("?")
    ages = [r for r in train + test if r["attribute"] == "age"]
    assert all(number_words(int(r["Answer"]["Value"])) in r["Answer"]["Aliases"] for r in ages)


def test_normalisation_and_number_words():
    assert normalize_answer("The Beatles!") == "beatles"
    assert normalize_answer("  a   Carpenter. ") == "carpenter"
    assert normalize_answer("Harlow, Norland") == "harlow norland"
    assert [number_words(n) for n in (7, 19, 20, 34, 80)] == [
        "seven", "nineteen", "twenty", "thirty-four", "eighty",
    ]  # fmt: skip


def test_world_files_and_readme_list_the_sets(world):
    manifest = json.loads((world / "manifest.json").read_text())
    for name in ("long_range/train.jsonl", "long_range/test.jsonl", "long_range/candidates.json",
                 "trivia/train.jsonl", "trivia/test.jsonl"):  # fmt: skip
        assert name in manifest["files"], name
    assert manifest["files"]["long_range/test.jsonl"]["records"] == 60
    readme = (world / "README.md").read_text()
    assert "long_range/" in readme and "trivia/" in readme
