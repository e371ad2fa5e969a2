"""Prompting tasks and the few-shot prompt builder: readers, formats, draws, orders, text and ids."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_data_helpers import make_bpe_tokenizer, write_jsonl
from world_helpers import build_tiny_world

from lmforge.common import LmforgeError
from lmforge.prompting.builder import (
    PromptBuilder,
    demos_for_labels,
    order_demos,
    permutations,
    sample_demos,
    take_test,
)
from lmforge.prompting.formats import format_from_prompt
from lmforge.prompting.tasks import Example, known_tasks, load_task


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    return build_tiny_world(tmp_path_factory.mktemp("prompt_world") / "world")


@pytest.fixture(scope="module")
def tok(world, tmp_path_factory):
    task = load_task("sentiment", world=world)
    docs = [ex.fields["text"] for ex in task.train + task.test] + ["Review: Sentiment: N/A"]
    return make_bpe_tokenizer(tmp_path_factory.mktemp("prompt_tok"), 400, docs * 3)


def spec_task(tmp_path: Path, rows_train, rows_test, **spec) -> Path:
    write_jsonl(tmp_path / "train.jsonl", rows_train)
    write_jsonl(tmp_path / "test.jsonl", rows_test)
    body = {
        "labels": ["bad", "good"],
        "train": "train.jsonl",
        "test": "test.jsonl",
        "format": {"template": "Review: {text}\nVerdict:"},
        **spec,
    }
    path = tmp_path / "reviews.json"
    path.write_text(json.dumps(body))
    return path


ROWS = [{"text": f"text {i}", "label": "good" if i % 2 else "bad"} for i in range(10)]


# --- tasks and formats -----------------------------------------------------------------


def test_world_task_takes_its_format_from_labels_json(world):
    task = load_task("sentiment", world=world)
    assert task.labels == ["negative", "positive"]
    assert task.format.template == "Review: {text}\nSentiment:"
    assert task.label_text("positive") == " positive"
    ex = Example({"text": "good film"}, "positive")
    assert task.query_text(ex) == "Review: good film\nSentiment:"
    assert task.demo_text(ex) == "Review: good film\nSentiment: positive"
    assert task.instruction.startswith("Classify the sentiment")
    assert len(task.formats) >= 4 and len(task.train) == 8 and len(task.test) == 8
    assert all(ex.where.split(":")[0].endswith(".jsonl") for ex in task.train)
    topic = load_task("topic", world=world, fmt="input_output")
    assert topic.query_text(Example({"text": "rain"}, "weather")) == "Input: rain\nOutput:"
    assert topic.format.name == topic.with_format(2).format.name


def test_format_from_prompt_splits_at_the_label_slot():
    f = format_from_prompt("x", "Q: {text}\nA: {label_word}.")
    assert (f.template, f.label_sep, f.label_suffix) == ("Q: {text}\nA:", " ", ".")
    with pytest.raises(LmforgeError, match="label_word"):
        format_from_prompt("x", "Q: {text}")


def test_shared_sets_read_with_the_calibrate_before_use_formats(shared_data):
    root = shared_data / "classification"
    sst2 = load_task("sst2", data_dir=root)
    assert len(sst2.train) == 6920 and len(sst2.test) == 872
    assert sst2.query_text(sst2.test[0]).startswith("Review: ")
    assert sst2.label_text("positive") == " Positive"
    ag = load_task("agnews", data_dir=root)
    assert len(ag.train) == 400 and len(ag.train) + len(ag.test) == 7600
    assert {ex.fields["text"] for ex in ag.train}.isdisjoint(ex.fields["text"] for ex in ag.test)
    assert ag.label_words["Sci/Tech"] == ["Technology", "Science"]
    assert ag.instruction.startswith("Classify the news articles")
    assert "#39;" not in " ".join(ex.fields["text"] for ex in ag.test[:500])
    trec = load_task("trec", data_dir=root)
    assert (
        trec.query_text(trec.test[0])
        == "Question: How far is it from Denver to Aspen?\nAnswer Type:"
    )
    assert trec.test[0].label == "NUM" and trec.label_text("ABBR") == " Abbreviation"
    rte = load_task("rte", data_dir=root)
    q = rte.query_text(rte.test[0])
    assert q.endswith(" True or False?\nanswer:") and "\nquestion: " in q
    cb = load_task("cb", data_dir=root)
    assert cb.query_text(cb.test[0]).endswith(". true, false, or neither?\nanswer:")
    assert [cb.label_text(x) for x in cb.labels] == [" false", " neither", " true"]
    assert len(load_task("sst2", data_dir=root, fmt="critics").formats) >= 4


def test_user_task_spec_with_synonyms_and_formats(tmp_path):
    path = spec_task(
        tmp_path, ROWS, ROWS[:4],
        label_words={"bad": ["awful", "bad"], "good": "great"},
        format=None,
        formats=[{"name": "a", "template": "R: {text}\nV:"},
                 {"name": "b", "template": "{text} =", "label_sep": " ", "separator": "\n"}],
    )  # fmt: skip
    spec = json.loads(path.read_text())
    del spec["format"]
    path.write_text(json.dumps(spec))
    task = load_task(str(path), fmt="b")
    assert task.name == "reviews" and task.format.name == "b"
    assert task.label_words == {"bad": ["awful", "bad"], "good": ["great"]}
    assert task.query_text(task.test[0]) == "text 0 ="


def test_a_task_file_label_outside_the_label_set_names_file_and_line(tmp_path):
    rows = [*ROWS[:3], {"text": "x", "label": "meh"}]
    path = spec_task(tmp_path, rows, ROWS[:2])
    with pytest.raises(LmforgeError, match=r"train\.jsonl:4: label 'meh' is not one of"):
        load_task(str(path))


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(LmforgeError) as e:
        load_task("imdb")
    for name in known_tasks():
        assert name in str(e.value)
    with pytest.raises(LmforgeError, match="--world"):
        load_task("sentiment")


def test_unknown_format_lists_the_known_ones(world):
    with pytest.raises(LmforgeError, match="known: world, answer"):
        load_task("sentiment", world=world, fmt="nope")
    with pytest.raises(LmforgeError, match="0..4"):
        load_task("sentiment", world=world, fmt=9)


# --- drawing and ordering the shown examples ------------------------------------------------


def test_balanced_draws_are_seeded_nested_and_balanced(world):
    task = load_task("topic", world=world)
    four = sample_demos(task, 4, seed=3)
    assert sorted(ex.label for ex in four) == sorted(task.labels)
    assert [ex.fields for ex in sample_demos(task, 4, seed=3)] == [ex.fields for ex in four]
    assert sample_demos(task, 2, seed=3) == four[:2]  # smaller k: a prefix of the same draw
    assert sample_demos(task, 4, seed=4) != four
    randoms = sample_demos(task, 5, seed=1, balanced=False)
    assert len({id(x) for x in randoms}) == 5


def test_k_larger_than_the_train_set_names_both_numbers(world):
    task = load_task("sentiment", world=world)
    with pytest.raises(LmforgeError, match=r"k=9 .* has 8 examples"):
        sample_demos(task, 9)


def test_explicit_label_order_for_the_recency_probe(world):
    task = load_task("sentiment", world=world)
    demos = demos_for_labels(task, ["positive", "positive", "negative", "negative"], seed=0)
    assert [d.label for d in demos] == ["positive", "positive", "negative", "negative"]
    assert len({d.fields["text"] for d in demos}) == 4
    with pytest.raises(LmforgeError, match="only 4 examples"):
        demos_for_labels(task, ["positive"] * 5)


def test_orders_and_permutations(world):
    task = load_task("sentiment", world=world)
    demos = sample_demos(task, 4, seed=0)
    assert order_demos(demos, "given") == demos
    shuffled = order_demos(demos, "random", seed=5)
    assert sorted(map(id, shuffled)) == sorted(map(id, demos))
    perms = permutations(demos, 30)
    assert len(perms) == 24 and perms[0] == demos
    assert len({tuple(map(id, p)) for p in permutations(demos, 6, seed=1)}) == 6
    assert take_test(task, 3) == take_test(task, 3) and len(take_test(task, 3)) == 3


# --- text and ids -----------------------------------------------------------------------------


def test_prompt_layout_and_ids(world, tok):
    task = load_task("sentiment", world=world)
    b = PromptBuilder(task, tok)
    demos = sample_demos(task, 2, seed=0)
    q = task.test[0]
    p = b.build(demos, q)
    expected = (
        task.instruction + "\n\n" + "".join(task.demo_text(d) + "\n\n" for d in demos)
        + task.query_text(q)
    )  # fmt: skip
    assert p.text == expected
    assert p.ids == [tok.eos_id] + tok.encode(expected)
    assert b.prefix_text(demos) + task.query_text(q) == p.text
    bare = PromptBuilder(task.with_format("no_instruction"), tok, start="none")
    assert bare.build([], q).ids == tok.encode(task.query_text(q))
    assert PromptBuilder(task, tok, start="bos").build([], q).ids[0] == tok.bos_id
    zero = b.build([], q)
    assert zero.text == task.instruction + "\n\n" + task.query_text(q)


def test_content_is_plain_text_and_special_template_parses_markup(world, tok, tmp_path):
    rows = [{"text": "<|end|> sneaky", "label": "good"}, {"text": "ok", "label": "bad"}]
    path = spec_task(tmp_path, rows, rows, format={"template": "<|user|>{text}\nVerdict:"})
    task = load_task(str(path))
    plain = PromptBuilder(task, tok, start="none").build([], task.test[0]).ids
    assert tok.end_id not in plain and tok.user_id not in plain
    marked = PromptBuilder(task, tok, start="none", special_template=True).build([], task.test[0])
    assert marked.ids[0] == tok.user_id and tok.end_id not in marked.ids


def test_content_free_prompts_replace_every_field(world, tok):
    task = load_task("sentiment", world=world)
    b = PromptBuilder(task, tok)
    demos = sample_demos(task, 2, seed=0)
    cf = b.content_free(demos, ["N/A", "", "[MASK]"])
    assert [p.text[len(b.prefix_text(demos)) :] for p in cf] == [
        "Review: N/A\nSentiment:", "Review: \nSentiment:", "Review: [MASK]\nSentiment:",
    ]  # fmt: skip


def test_label_ids_refuse_a_word_with_no_tokens(tmp_path, tok):
    path = spec_task(
        tmp_path, ROWS, ROWS[:2], label_words={"bad": "", "good": "great"},
        format={"template": "R: {text}\nV:", "label_sep": ""},
    )  # fmt: skip
    b = PromptBuilder(load_task(str(path)), tok)
    with pytest.raises(LmforgeError, match="label word '' of label 'bad' tokenizes to nothing"):
        b.label_ids()
