"""The built-in world: determinism, formats, disjoint splits, checkers on every record, CLI."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import assert_clean_error, run_lmforge_inprocess

from lmforge.common import LmforgeError
from lmforge.data.world import FAMILIES, SIZES, WorldConfig, build_world, check
from lmforge.data.world import build as build_module
from lmforge.data.world.config import COUNT_FIELDS
from lmforge.data.world.tasks import DEFAULT_HELDOUT_TASKS

# A world small enough to build twice in well under a second.
TINY = dict(
    people=20,
    places=5,
    events=6,
    pretrain_chars=60_000,
    train_per_family=60,
    val_per_family=10,
    test_per_family=20,
    dialogues_train=60,
    dialogues_val=10,
    dialogues_test=20,
    preferences_train=90,
    preferences_val=20,
    rankings_train=30,
    rankings_val=10,
    classification_train_per_label=20,
    classification_test_per_label=10,
)


def _tiny(out: Path, seed: int = 0, **kw) -> WorldConfig:
    return WorldConfig(out=str(out), seed=seed, **{**TINY, **kw})


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


SEEN = [name for name in FAMILIES if name not in DEFAULT_HELDOUT_TASKS]
INSTRUCTION_FILES = ("train", "val", "test", "heldout_templates", "heldout_tasks")


def _hashes(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    """The default `small` world (seed 0)."""
    out = tmp_path_factory.mktemp("world") / "small"
    build_world(WorldConfig(out=str(out)))
    return out


def test_same_seed_is_byte_identical_and_other_seed_differs(tmp_path):
    build_world(_tiny(tmp_path / "a", seed=7))
    build_world(_tiny(tmp_path / "b", seed=7))
    build_world(_tiny(tmp_path / "c", seed=8))
    a, b, c = (_hashes(tmp_path / x) for x in "abc")
    assert len(a) == 28 and a == b
    assert {"instructions/heldout_tasks.jsonl", "dialogues/val.jsonl", "README.md"} <= set(a)
    assert set(a) == set(c)
    # Every generated file changes with the seed (labels.json are fixed metadata).
    differ = {k for k in a if a[k] != c[k]}
    assert differ == {k for k in a if not k.endswith("labels.json")}


def test_more_training_problems_leave_the_evaluation_files_unchanged(tmp_path):
    # Splits are hash-assigned and templates drawn per file, so `--train-per-family` can
    # grow the training set while test.jsonl (and every other instruction file) stays the
    # same bytes: accuracy before and after is measured on the same records.
    build_world(_tiny(tmp_path / "a"))
    build_world(_tiny(tmp_path / "b", train_per_family=4 * TINY["train_per_family"]))
    a, b = (_hashes(tmp_path / x / "instructions") for x in "ab")
    assert {k for k in a if a[k] != b[k]} == {"train.jsonl"}
    small, big = (_jsonl(tmp_path / x / "instructions" / "train.jsonl") for x in "ab")
    assert len(big) > 3 * len(small)
    # The same draws in the same order: the smaller training set is a subset, templates too.
    assert {json.dumps(r) for r in small} <= {json.dumps(r) for r in big}


def test_manifest_describes_every_file(world):
    manifest = json.loads((world / "manifest.json").read_text())
    assert manifest["generator"] == "lmforge world" and manifest["seed"] == 0
    assert manifest["counts"] == SIZES["small"]
    on_disk = _hashes(world)
    on_disk.pop("manifest.json")
    assert {k: v["sha256"] for k, v in manifest["files"].items()} == on_disk
    train = _jsonl(world / "instructions" / "train.jsonl")
    assert manifest["files"]["instructions/train.jsonl"]["records"] == len(train)
    for name, info in manifest["families"].items():
        assert info["records"]["train"] == sum(r["task"] == name for r in train)
        assert info["heldout_templates"] == list(FAMILIES[name].heldout_templates)
        assert info["heldout_task"] == (name in DEFAULT_HELDOUT_TASKS)
    assert manifest["heldout_tasks"] == list(DEFAULT_HELDOUT_TASKS) == ["comparing"]
    assert manifest["files"]["instructions/heldout_tasks.jsonl"]["records"] == 150
    readme = (world / "README.md").read_text(encoding="utf-8")
    assert "Held-out task families: comparing." in readme
    assert "| comparing | yes | no | 1, 2, 3 | 0 | 0 | 0 | 0 | 150 |" in readme
    assert not list(world.parent.glob(".*building*")), "temporary folder left behind"


def test_pretrain_text_format_and_size(world):
    raw = (world / "pretrain" / "train.txt").read_bytes()
    text = raw.decode("utf-8")
    assert "\r" not in text and text.endswith("\n") and not text.endswith("\n\n")
    assert "\n\n\n" not in text, "documents are separated by exactly one blank line"
    docs = text.rstrip("\n").split("\n\n")
    assert all(d.strip() == d and d for d in docs)
    assert 1_000_000 <= len(text) <= 2_000_000
    val_docs = (
        (world / "pretrain" / "val.txt").read_text(encoding="utf-8").rstrip("\n").split("\n\n")
    )
    assert len(val_docs) > 50 and not set(val_docs) & set(docs)


def test_each_persons_facts_recur_in_pretraining_text(world):
    """A masked LM must be able to fill 'Anna lives in [MASK].' from the text."""
    people = json.loads((world / "world.json").read_text())["people"]
    assert 50 <= len(people) <= 100
    text = (world / "pretrain" / "train.txt").read_text(encoding="utf-8")
    for p in people:
        assert text.count(f"{p['name']} lives in {p['city']}.") >= 5, p["name"]
        assert text.count(p["pet_name"]) >= 10, p["pet_name"]
        assert re.search(rf"\b{p['name']}\b[^.\n]*\b{p['job']}\b", text), p["name"]


def test_world_json_entities_are_consistent(world):
    w = json.loads((world / "world.json").read_text())
    names = [p["name"] for p in w["people"]]
    pets = [p["pet_name"] for p in w["people"]]
    cities = [c["name"] for c in w["places"]]
    assert len(set(names)) == len(names) and len(set(pets)) == len(pets)
    lowered = [x.lower() for x in names + pets + cities]
    assert len(set(lowered)) == len(lowered), "people, pets and cities never share a name"
    for p in w["people"]:
        assert p["city"] in cities and p["friend"] in names and p["friend"] != p["name"]
        assert 18 <= p["age"] <= 80
    for e in w["events"]:
        assert e["city"] in cities and set(e["attendees"]) <= set(names)


def _user_prompts(rows: list[dict]) -> set[str]:
    return {r["messages"][0]["content"] for r in rows}


def test_instruction_records_follow_the_schema(world):
    for name in INSTRUCTION_FILES:
        for r in _jsonl(world / "instructions" / f"{name}.jsonl"):
            assert [m["role"] for m in r["messages"]] == ["user", "assistant"]
            fam = FAMILIES[r["task"]]
            assert r["difficulty"] in fam.difficulties
            assert r["answer_type"] in fam.answer_types
            assert isinstance(r["answer"], str) and r["answer"]
            assert r["heldout_task"] is (name == "heldout_tasks")
            if r["answer_type"] == "choice":
                assert r["answer"] in r["choices"]
            target = r["messages"][1]["content"]
            if r["cot"]:
                assert fam.has_cot
                assert target.splitlines()[-1] == f"Answer: {r['answer']}"
                assert len(target.splitlines()) >= 2 + r["difficulty"] - 1
            else:
                assert target == r["answer"]


@pytest.mark.parametrize("family", ["word_problem", "multi_step", "fact_chain"])
def test_reasoning_families_come_as_cot_and_direct_pairs(world, family):
    assert FAMILIES[family].has_cot
    rows = [r for r in _jsonl(world / "instructions" / "test.jsonl") if r["task"] == family]
    by_problem: dict[str, list[dict]] = {}
    for r in rows:
        by_problem.setdefault(r["problem_id"], []).append(r)
    assert len(by_problem) >= 100
    for pair in by_problem.values():
        assert sorted(r["cot"] for r in pair) == [False, True]
        assert len({r["template"] for r in pair}) == 1 and len({r["answer"] for r in pair}) == 1
        cot, direct = sorted(pair, key=lambda r: not r["cot"])
        assert cot["messages"][0]["content"].endswith("\nLet's think step by step.")
        assert direct["messages"][0]["content"].startswith(
            cot["messages"][0]["content"].rsplit("\n", 1)[0] + "\nReply with just the "
        )
    if family != "word_problem":  # difficulty = steps: one reasoning line per step
        for r in rows:
            if r["cot"]:
                assert len(r["messages"][1]["content"].splitlines()) == r["difficulty"] + 1


def test_every_seen_family_is_in_every_split_and_heldout_ones_only_apart(world):
    for name in ("train", "val", "test", "heldout_templates"):
        tasks = {r["task"] for r in _jsonl(world / "instructions" / f"{name}.jsonl")}
        assert tasks == set(SEEN), name
    held = _jsonl(world / "instructions" / "heldout_tasks.jsonl")
    assert {r["task"] for r in held} == set(DEFAULT_HELDOUT_TASKS)
    assert len(held) == 150 and {r["difficulty"] for r in held} == {1, 2, 3}
    assert {r["template"] for r in held} <= set(FAMILIES["comparing"].templates)


def test_splits_never_share_an_example(world):
    files = {n: _jsonl(world / "instructions" / f"{n}.jsonl") for n in ("train", "val", "test")}
    held = _jsonl(world / "instructions" / "heldout_templates.jsonl")
    tasks = _jsonl(world / "instructions" / "heldout_tasks.jsonl")
    prompts = {n: _user_prompts(rows) for n, rows in files.items()}
    prompts["heldout"] = _user_prompts(held)
    prompts["heldout_tasks"] = _user_prompts(tasks)
    names = list(prompts)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            assert not prompts[a] & prompts[b], (a, b)
    ids = {n: {r["problem_id"] for r in rows} for n, rows in files.items()}
    assert not ids["train"] & ids["test"] and not ids["train"] & ids["val"]
    assert not ids["val"] & ids["test"]
    assert {r["problem_id"] for r in held} == ids["test"]
    task_ids = {r["problem_id"] for r in tasks}
    assert len(task_ids) == len(tasks) and not task_ids & set().union(*ids.values())


def test_heldout_family_is_nowhere_a_model_trains(world):
    """Not in train/val, the preference pairs, or (as its Q&A lines) the pretraining text."""
    for name in ("train", "val"):
        rows = _jsonl(world / "instructions" / f"{name}.jsonl")
        assert not {r["task"] for r in rows} & set(DEFAULT_HELDOUT_TASKS), name
    prefs = _jsonl(world / "preferences" / "train.jsonl") + _jsonl(
        world / "preferences" / "val.jsonl"
    )
    assert {r["task"] for r in prefs} == set(SEEN) | {"dialogue"}
    assert not any(r["heldout_task"] for r in prefs)
    text = (world / "pretrain" / "train.txt").read_text(encoding="utf-8")
    assert "Question: Which is bigger" not in text and ": which is greater?" not in text
    assert "Question: Sort these" in text  # puzzles of the seen families still are


def test_test_problems_are_not_in_train_by_content(world):
    """Independent of problem ids: parse the problems back out of the prompts."""

    def arithmetic(rows):
        out = set()
        for r in rows:
            if r["task"] == "arithmetic":
                a, b = re.findall(r"\d+", r["messages"][0]["content"])[:2]
                out.add((r["subtask"], int(a), int(b)))
        return out

    def facts(rows):
        out = set()
        for r in rows:
            if r["task"] == "facts":
                caps = re.findall(r"\b[A-Z][a-z]+\b", r["messages"][0]["content"])
                out.add((r["subtask"], tuple(c for c in caps if c not in ("What", "Where"))))
        return out

    train = _jsonl(world / "instructions" / "train.jsonl")
    test = _jsonl(world / "instructions" / "test.jsonl")
    assert arithmetic(test) and not arithmetic(test) & arithmetic(train)
    # Same subject asked about with different templates still counts as the same problem.
    test_subjects = {(s, frozenset(c)) for s, c in facts(test)}
    train_subjects = {(s, frozenset(c)) for s, c in facts(train)}
    assert test_subjects and not test_subjects & train_subjects

    # Multi-step arithmetic by its computation (read off the worked lines), fact chains by
    # the question itself, whatever template wraps it.
    def steps(rows):
        return {
            tuple(re.findall(r"(\d+) ([-+*]) (\d+) =", r["messages"][1]["content"]))
            for r in rows
            if r["task"] == "multi_step" and r["cot"]
        }

    def chains(rows):
        out = set()
        for r in rows:
            if r["task"] == "fact_chain":
                m = re.search(r"(?:Who|What|In which|How) [^?]*\?", r["messages"][0]["content"])
                out.add(m.group(0))
        return out

    assert steps(test) and not steps(test) & steps(train)
    assert chains(test) and not chains(test) & chains(train)
    # Test arithmetic never appears in the pretraining text either.
    text = (world / "pretrain" / "train.txt").read_text(encoding="utf-8")
    syms = {"add": "+", "sub": "-", "mul": "*"}
    leaked = [(s, a, b) for s, a, b in arithmetic(test) if f"\n{a} {syms[s]} {b} = " in text]
    assert not leaked


def test_heldout_templates_are_never_seen_in_training(world):
    for name, fam in FAMILIES.items():
        assert len(fam.templates) >= 3 and len(fam.heldout_templates) >= 1, name
        assert not set(fam.templates) & set(fam.heldout_templates)
    seen_ids = {t for f in FAMILIES.values() for t in f.templates}
    held_ids = {t for f in FAMILIES.values() for t in f.heldout_templates}
    for name in ("train", "val", "test"):
        used = {r["template"] for r in _jsonl(world / "instructions" / f"{name}.jsonl")}
        assert used <= seen_ids, name
    held_used = {r["template"] for r in _jsonl(world / "instructions" / "heldout_templates.jsonl")}
    assert held_used <= held_ids and len(held_used) >= 20


def test_every_generated_answer_passes_its_checker(world):
    for path in sorted(world.glob("instructions/*.jsonl")) + sorted(
        world.glob("dialogues/*.jsonl")
    ):
        for r in _jsonl(path):
            assert check(r, r["messages"][-1]["content"]) == 1.0, (path.name, r)
            assert check(r, "") == 0.0


def test_preference_pairs_are_rated(world):
    ratings = ("significantly_better", "better", "slightly_better", "negligibly_better")
    rows = _jsonl(world / "preferences" / "train.jsonl")
    val = _jsonl(world / "preferences" / "val.jsonl")
    assert len(rows) == 1500 and len(val) == 200
    assert {r["rejected_kind"] for r in rows} == {"wrong", "unhelpful", "sloppy"}
    for r in rows + val:
        assert r["rating"] in ratings and "margin" not in r
        roles = [m["role"] for m in r["prompt"]]
        if r["task"] == "dialogue":  # multi-turn: the chat before the last answer
            assert roles[0] == "system" and roles[-1] == "user" and roles.count("user") >= 2
        else:
            assert roles == ["user"]
        assert r["chosen"] != r["rejected"]
        assert check(r, r["chosen"]) == 1.0
        assert check(r, r["rejected"]) == (1.0 if r["rejected_kind"] == "sloppy" else 0.0)
        assert r["graded"]["chosen"] == 1.0 > r["graded"]["rejected"]
        # Wrong or no answer: at least "better"; a right answer sloppily written: at most "slightly".
        strong = r["rating"] in ratings[:2]
        assert strong == (r["rejected_kind"] != "sloppy")
    # Every level present, the strong ones common (LLaMA-2 style); one pair in six multi-turn.
    share = {x: sum(r["rating"] == x for r in rows) / len(rows) for x in ratings}
    assert min(share.values()) >= 0.1 and share["significantly_better"] == max(share.values())
    assert share["significantly_better"] + share["better"] >= 0.5
    assert sum(r["task"] == "dialogue" for r in rows) == 1500 // 6

    def prompts(rs):
        return {tuple(m["content"] for m in r["prompt"]) for r in rs}

    assert not prompts(rows) & prompts(val)
    rankings = _jsonl(world / "preferences" / "rankings_train.jsonl")
    assert len(rankings) == 500 and len(_jsonl(world / "preferences" / "rankings_val.jsonl")) == 100
    test_ids = {r["problem_id"] for r in _jsonl(world / "instructions" / "test.jsonl")}
    assert not test_ids & {r["problem_id"] for r in rows + val}


def test_dialogues_depend_on_earlier_turns(world):
    train = _jsonl(world / "dialogues" / "train.jsonl")
    val = _jsonl(world / "dialogues" / "val.jsonl")
    test = _jsonl(world / "dialogues" / "test.jsonl")
    assert len(train) == 600 and len(val) == 60 and len(test) == 150
    splits = [train, val, test]
    for i, a in enumerate(splits):
        for b in splits[i + 1 :]:
            assert not {r["problem_id"] for r in a} & {r["problem_id"] for r in b}
            users = {tuple(m["content"] for m in r["messages"] if m["role"] == "user") for r in a}
            assert not users & {
                tuple(m["content"] for m in r["messages"] if m["role"] == "user") for r in b
            }
    assert {r["subtask"] for r in val} == {r["subtask"] for r in train}
    kinds = set()
    for r in train + val + test:
        roles = [m["role"] for m in r["messages"]]
        assert roles[0] == "system" and roles[-1] == "assistant"
        assert roles.count("user") >= 2
        user = [m["content"] for m in r["messages"] if m["role"] == "user"]
        # The last question alone does not contain its answer.
        assert not re.search(rf"\b{re.escape(r['answer'])}\b", user[-1])
        if r["subtask"] in ("pet_name", "user_name", "user_city", "list_recall"):
            assert r["answer"] in user[0]
        kinds.add(r["subtask"])
    assert len(kinds) == 6


def test_classification_sets_are_balanced_with_label_words(world):
    for name, n_labels in (("sentiment", 2), ("topic", 4)):
        folder = world / "classification" / name
        labels = json.loads((folder / "labels.json").read_text())
        assert len(labels["labels"]) == n_labels
        assert set(labels["label_words"]) == set(labels["labels"])
        assert "{text}" in labels["prompt"] and "{label_word}" in labels["prompt"]
        texts = {}
        for split, per_label in (("train", 200), ("test", 100)):
            rows = _jsonl(folder / f"{split}.jsonl")
            assert all(set(r) == {"text", "label"} for r in rows)
            counts = {lab: sum(r["label"] == lab for r in rows) for lab in labels["labels"]}
            assert set(counts.values()) == {per_label}, counts
            texts[split] = {r["text"] for r in rows}
            assert len(texts[split]) == len(rows)
        assert not texts["train"] & texts["test"]


def test_count_overrides_and_config_fields():
    fields = {f.name for f in dataclasses.fields(WorldConfig)}
    assert set(COUNT_FIELDS) <= fields
    cfg = WorldConfig(out="x", size="medium", people=33)
    assert cfg.counts()["people"] == 33
    assert cfg.counts()["pretrain_chars"] >= 20_000_000
    assert SIZES["large"]["pretrain_chars"] > SIZES["medium"]["pretrain_chars"]


def test_heldout_tasks_can_be_chosen(tmp_path):
    out = tmp_path / "w"
    manifest = build_world(_tiny(out, heldout_tasks=["sorting", "multi_step"]))
    assert manifest["heldout_tasks"] == ["multi_step", "sorting"]  # registry order
    held = _jsonl(out / "instructions" / "heldout_tasks.jsonl")
    # Test-sized: 20 problems each; multi-step ones come as CoT and direct.
    assert sum(r["task"] == "sorting" for r in held) == 20
    assert sum(r["task"] == "multi_step" for r in held) == 40
    for name in ("train", "val", "test", "heldout_templates"):
        tasks = {r["task"] for r in _jsonl(out / "instructions" / f"{name}.jsonl")}
        assert tasks == set(FAMILIES) - {"sorting", "multi_step"}, name
    prefs = _jsonl(out / "preferences" / "train.jsonl")
    assert not {r["task"] for r in prefs} & {"sorting", "multi_step"}
    text = (out / "pretrain" / "train.txt").read_text(encoding="utf-8")
    assert "Question: Sort these" not in text and "Question: Put in ascending" not in text
    for r in held:
        assert check(r, r["messages"][-1]["content"]) == 1.0

    # "none": no family is held out, the file exists and is empty.
    manifest = build_world(_tiny(tmp_path / "none", heldout_tasks=["none"]))
    assert manifest["heldout_tasks"] == []
    assert manifest["files"]["instructions/heldout_tasks.jsonl"]["records"] == 0
    assert manifest["families"]["comparing"]["records"]["train"] == 60

    with pytest.raises(LmforgeError, match="heldout_tasks.*unknown family 'nosuch'"):
        build_world(_tiny(tmp_path / "bad", heldout_tasks=["nosuch"]))
    with pytest.raises(LmforgeError, match="heldout_tasks.*every family"):
        build_world(_tiny(tmp_path / "bad", heldout_tasks=list(FAMILIES)))
    assert not (tmp_path / "bad").exists()

    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    r = run_lmforge_inprocess(
        "world", "--out", tmp_path / "cli", *flags, "--heldout-tasks", "topic,facts", "--quiet"
    )
    assert r.returncode == 0, r.stderr
    manifest = json.loads((tmp_path / "cli" / "manifest.json").read_text())
    assert manifest["heldout_tasks"] == ["facts", "topic"]
    assert_clean_error(
        run_lmforge_inprocess("world", "--out", tmp_path / "x", "--heldout-tasks", "sortng"),
        "heldout_tasks",
        "sortng",
    )


def test_out_folder_is_never_damaged(tmp_path, monkeypatch):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "notes.txt").write_text("keep me")
    for force in (False, True):
        with pytest.raises(LmforgeError, match="precious"):
            build_world(_tiny(precious, force=force))
    assert (precious / "notes.txt").read_text() == "keep me"

    out = tmp_path / "w"
    build_world(_tiny(out, seed=1))
    before = _hashes(out)
    with pytest.raises(LmforgeError, match="--force"):
        build_world(_tiny(out, seed=2))

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    # A build that fails half way leaves the old world as it was and no temporary folder.
    monkeypatch.setattr(build_module, "build_classification", boom)
    with pytest.raises(RuntimeError):
        build_world(_tiny(out, seed=2, force=True))
    assert _hashes(out) == before
    assert {p.name for p in tmp_path.iterdir()} == {"precious", "w"}
    monkeypatch.undo()

    build_world(_tiny(out, seed=2, force=True))
    assert _hashes(out) != before

    with pytest.raises(LmforgeError, match="people"):
        build_world(_tiny(tmp_path / "bad", people=2))
    with pytest.raises(LmforgeError, match="out"):
        build_world(WorldConfig())

    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    with pytest.raises(LmforgeError, match="not a folder"):
        build_world(_tiny(a_file))


def test_cli_builds_and_prints_a_summary(tmp_path):
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in TINY.items()]
    # Another process with another hash seed builds the very same bytes.
    r = subprocess.run(
        [sys.executable, "-m", "lmforge", "world", "--out", str(tmp_path / "w"), "--seed", "3"]
        + flags,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONHASHSEED": "12345"},
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    assert "pretrain text" in r.stdout and "instructions/train.jsonl" in r.stdout
    build_world(_tiny(tmp_path / "same", seed=3))
    assert _hashes(tmp_path / "w") == _hashes(tmp_path / "same")
    # The error paths need no fresh interpreter.
    run = run_lmforge_inprocess
    assert_clean_error(run("world", "--out", tmp_path / "w", *flags), "not empty", "--force")
    assert_clean_error(run("world", "--out", tmp_path / "x", "--size", "huge"), "size")
    assert_clean_error(run("world"), "out")
    assert_clean_error(run("world", "--out", tmp_path / "x", "--people", "2"), "people")


@pytest.mark.slow
def test_medium_world_has_20m_chars_of_pretraining_text(tmp_path):
    manifest = build_world(WorldConfig(out=str(tmp_path / "m"), size="medium"))
    assert manifest["pretrain_chars"]["train"] >= 20_000_000
    assert manifest["files"]["instructions/train.jsonl"]["records"] >= 40_000
