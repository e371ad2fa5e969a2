"""Instruction readers: every format into one Conversation type, detection, bad lines, real files."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from world_helpers import build_tiny_world

from lmforge.common import LmforgeError
from lmforge.data.instructions import (
    ReadOptions,
    extract_answer,
    iter_conversations,
    prompt_completion,
    read_instructions,
    score,
)
from lmforge.data.instructions import records as records_module
from lmforge.data.instructions.prompt_completion import split_task_template


def _jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows),
        encoding="utf-8",
    )
    return path


def _head(src: Path, dst: Path, n: int) -> Path:
    """The first `n` lines of a (large) shared file, copied without reading the rest."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with open(src, encoding="utf-8") as f, open(dst, "w", encoding="utf-8") as out:
        out.writelines(itertools.islice(f, n))
    return dst


WORLD_ROW = {
    "messages": [
        {"role": "user", "content": "Which word is longer, engine or dolphin?"},
        {"role": "assistant", "content": "dolphin"},
    ],
    "task": "comparing",
    "subtask": "longer",
    "template": "comparing/longer/t1",
    "problem_id": "364069264279177b",
    "difficulty": 1,
    "cot": False,
    "answer": "dolphin",
    "answer_type": "choice",
    "choices": ["engine", "dolphin"],
}


# ---------------------------------------------------------------------------
# One test per format


def test_messages_records_keep_roles_and_put_every_other_key_in_meta(tmp_path):
    dialogue = {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "I have 5 books."},
            {"role": "assistant", "content": "Okay, you have 5 books."},
            {"role": "user", "content": "How many books do I have?"},
            {"role": "assistant", "content": "You have 5 books."},
        ],
        "task": "dialogue",
        "answer": "5",
        "answer_type": "number",
    }
    result = read_instructions(_jsonl(tmp_path / "train.jsonl", [WORLD_ROW, dialogue]))
    a, b = result.conversations
    assert a.to_dicts() == WORLD_ROW["messages"]
    assert {k: a.meta[k] for k in WORLD_ROW if k != "messages"} == {
        k: v for k, v in WORLD_ROW.items() if k != "messages"
    }
    assert a.meta["extractor"] == "checker"
    assert [m.role for m in b.messages] == ["system", "user", "assistant", "user", "assistant"]
    assert result.read == 2 and result.skipped == 0
    assert result.files[0].format == "messages"
    assert score(b.meta, "You have 5 books.") == 1.0 and score(b.meta, "You have 4.") == 0.0


def test_prompt_completion_strips_end_of_text_and_names_task_and_template(tmp_path):
    path = _jsonl(
        tmp_path / "t0" / "ag_news_classify_question_first.jsonl",
        [{"prompt": "What label best describes this news article?\nOil soars.\n", "completion": "Business<|endoftext|>"}],
    )  # fmt: skip
    (conv,) = read_instructions(path).conversations
    assert conv.to_dicts() == [
        {"role": "user", "content": "What label best describes this news article?\nOil soars."},
        {"role": "assistant", "content": "Business"},
    ]
    assert conv.meta["task"] == "ag_news"
    assert conv.meta["template"] == "classify_question_first"
    assert conv.meta["answer"] == "Business" and conv.meta["extractor"] == "exact"
    assert score(conv.meta, "business") == 1.0 and score(conv.meta, "Sports") == 0.0


def test_task_template_split_of_file_stems():
    assert split_task_template("trec_fine_grained_ABBR") == ("trec", "fine_grained_ABBR")
    assert split_task_template("dbpedia_14_given_a_choice_of_categories_") == (
        "dbpedia_14",
        "given_a_choice_of_categories_",
    )
    assert split_task_template("wiki_qa_Is_This_True_") == ("wiki_qa", "Is_This_True_")
    # Unknown datasets: the prefix most sibling files share, the longest such one.
    sib = ["my_set_alpha", "my_set_beta_2", "my_set_beta", "other_x"]
    assert split_task_template("my_set_beta_2", sib) == ("my_set", "beta_2")
    assert split_task_template("lonely_file", []) == ("lonely", "file")


def test_task_split_of_every_real_t0_file(shared_data, monkeypatch):
    stems = sorted(p.stem for p in (shared_data / "instructions" / "t0_templates").glob("*.jsonl"))
    tasks = {split_task_template(s, stems)[0] for s in stems}
    assert tasks == {
        "ag_news",
        "amazon_polarity",
        "app_reviews",
        "common_gen",
        "dbpedia_14",
        "rotten_tomatoes",
        "trec",
        "wiki_qa",
    }
    # The sibling heuristic alone agrees with P3's names on this folder.
    monkeypatch.setattr(prompt_completion, "P3_DATASETS", ())
    assert {split_task_template(s, stems)[0] for s in stems} == tasks


def test_alpaca_with_and_without_input(tmp_path):
    path = _jsonl(
        tmp_path / "alpaca.jsonl",
        [
            {"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
            {"instruction": "Name a colour.", "input": "", "output": "Blue"},
            {"instruction": "Name a fruit.", "output": "Apple", "category": "open_qa"},
            {"instruction": "Name a pet.", "input": None, "output": "Cat"},
        ],
    )
    convs = read_instructions(path).conversations
    assert [c.messages[0].content for c in convs] == [
        "Translate to French.\n\nGood morning",
        "Name a colour.",
        "Name a fruit.",
        "Name a pet.",
    ]
    assert [c.messages[1].content for c in convs] == ["Bonjour", "Blue", "Apple", "Cat"]
    assert convs[2].meta["category"] == "open_qa"
    assert convs[0].meta["template"] == "alpaca/forward/t1"
    assert "answer" not in convs[0].meta  # free text: nothing to score


def test_self_instruct_gives_one_conversation_per_instance(tmp_path):
    path = _jsonl(
        tmp_path / "seed.jsonl",
        [
            {
                "id": "seed_task_1",
                "name": "antonym_relation",
                "instruction": "What is the relation between the given pairs?",
                "instances": [
                    {"input": "Night : Day :: Right : Left", "output": "Opposites."},
                    {"input": "Hot : Cold", "output": "Opposites too."},
                ],
                "is_classification": False,
            }
        ],
    )
    result = read_instructions(path)
    assert result.files[0].format == "self_instruct"
    assert result.read == 1 and len(result.conversations) == 2
    a, b = result.conversations
    assert a.messages[0].content.endswith("\n\nNight : Day :: Right : Left")
    assert b.messages[1].content == "Opposites too."
    assert a.meta["task"] == "self_instruct" and a.meta["subtask"] == "antonym_relation"
    assert (a.meta["instance"], b.meta["instance"]) == (0, 1)
    assert a.meta["id"] == "seed_task_1" and a.meta["is_classification"] is False


SHAREGPT = [
    {
        "id": "chat_0",
        "conversations": [
            {"from": "system", "value": "Be brief."},
            {"from": "human", "value": "Who are you?"},
            {"from": "gpt", "value": "An assistant."},
        ],
    },
    {"id": "chat_1", "conversations": [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello!"}]},
]  # fmt: skip


@pytest.mark.parametrize("layout", ["array", "jsonl"])
def test_sharegpt_as_json_array_or_jsonl(tmp_path, layout):
    if layout == "array":
        path = tmp_path / "chat.json"
        path.write_text(json.dumps(SHAREGPT, indent=2), encoding="utf-8")
    else:
        path = _jsonl(tmp_path / "chat.jsonl", SHAREGPT)
    a, b = read_instructions(path).conversations
    assert a.to_dicts() == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Who are you?"},
        {"role": "assistant", "content": "An assistant."},
    ]
    assert b.meta == {"id": "chat_1"}


def test_sharegpt_unknown_speaker_names_file_line_and_record(tmp_path):
    bad = json.loads(json.dumps(SHAREGPT))
    bad[1]["conversations"][1]["from"] = "bot"
    path = tmp_path / "chat.json"
    path.write_text(json.dumps(bad, indent=2), encoding="utf-8")
    line = next(i for i, s in enumerate(path.read_text().splitlines(), 1) if '"chat_1"' in s) - 1
    with pytest.raises(LmforgeError) as e:
        read_instructions(path)
    msg = str(e.value)
    assert (
        f"{path}:{line}: record 1 (id 'chat_1'): conversations[1].from: unknown speaker 'bot'"
        in msg
    )
    assert "\n" not in msg


GSM8K_ROW = {
    "question": "Natalia sold clips to 48 friends in April, and half as many in May. How many in all?",
    "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n"
    "Natalia sold 48+24 = <<48+24=72>>72 clips.\n#### 1,072",
}


def test_gsm8k_chain_of_thought_removes_calculator_annotations(tmp_path):
    (conv,) = read_instructions(_jsonl(tmp_path / "gsm8k.jsonl", [GSM8K_ROW])).conversations
    user, assistant = (m.content for m in conv.messages)
    assert user.startswith("Natalia sold clips") and user.endswith("Let's think step by step.")
    assert assistant == (
        "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips.\n#### 1,072"
    )
    assert conv.meta["answer"] == "1072" and conv.meta["answer_type"] == "number"
    assert conv.meta["cot"] is True and conv.meta["task"] == "gsm8k"
    assert conv.meta["extractor"] == "gsm8k"
    assert score(conv.meta, assistant) == 1.0
    assert extract_answer(conv.meta, "so 1,072 in all") == "1072"


def test_gsm8k_keep_calculator_direct_and_both_variants(tmp_path):
    path = _jsonl(tmp_path / "gsm8k.jsonl", [GSM8K_ROW])
    (kept,) = read_instructions(path, calculator="keep").conversations
    assert "<<48/2=24>>24" in kept.messages[1].content
    (direct,) = read_instructions(path, gsm8k="direct").conversations
    assert direct.messages[1].content == "1,072" and direct.meta["cot"] is False
    assert direct.messages[0].content.endswith("Reply with just the number.")
    both = read_instructions(path, gsm8k="both").conversations
    assert [c.meta["cot"] for c in both] == [True, False]
    # One answer, scored the same way whichever variant answered.
    assert score(both[0].meta, "… 24 + 1048 …\n#### 1072") == score(both[1].meta, "1072") == 1.0


@pytest.mark.parametrize(
    "answer, field",
    [
        ("She sold 72 clips.", "no final '#### <number>'"),
        ("72 clips\n#### many", "final .####. line .*is not a number"),
    ],
)
def test_gsm8k_bad_answer_lines(tmp_path, answer, field):
    path = _jsonl(tmp_path / "g.jsonl", [{"question": "How many?", "answer": answer}])
    with pytest.raises(LmforgeError, match=f"g.jsonl:1: answer: .*{field}"):
        read_instructions(path)


# ---------------------------------------------------------------------------
# Detection, forcing, bad lines


def test_format_is_detected_per_file(tmp_path):
    folder = tmp_path / "mixed"
    _jsonl(folder / "a.jsonl", [WORLD_ROW])
    _jsonl(folder / "b.jsonl", [GSM8K_ROW])
    _jsonl(folder / "c.jsonl", [{"instruction": "Say hi.", "output": "Hi"}])
    (folder / "d.json").write_text(json.dumps(SHAREGPT), encoding="utf-8")
    result = read_instructions(folder)
    assert [f.format for f in result.files] == ["messages", "gsm8k", "alpaca", "sharegpt"]
    assert len(result.conversations) == 5
    assert "a.jsonl: messages, 1 records, 1 conversations" in result.summary()


def test_first_valid_record_decides_and_a_forced_format_names_the_missing_field(tmp_path):
    path = _jsonl(tmp_path / "x.jsonl", ["{not json", GSM8K_ROW, WORLD_ROW])
    result = read_instructions(path, skip_bad_lines=True)
    assert result.files[0].format == "gsm8k"
    # The world row is not GSM8K: once detected, a file keeps its format.
    assert result.skipped == 2 and "x.jsonl:3: question: missing" in result.reasons[1]
    forced = _jsonl(tmp_path / "y.jsonl", [WORLD_ROW, GSM8K_ROW])
    with pytest.raises(
        LmforgeError,
        match=r'y\.jsonl:2: messages: missing \(this record has: "question", "answer"\)',
    ):
        read_instructions(forced, fmt="messages")


BAD_LINES = [
    ("{\"messages\": [", "malformed JSON"),
    ('"just text"', "expected a JSON object, got string"),
    ('{"messages": [{"role": "user"}]}', "messages[0].content: missing"),
    ('{"messages": [{"role": "user", "content": 5}]}', "messages[0].content: must be a string, got number"),
    ('{"messages": [{"role": "bot", "content": "x"}]}', "messages[0].role: unknown role 'bot'"),
    ('{"messages": [{"role": "user", "content": "hi"}]}', "messages: has no assistant turn"),
    ('{"messages": "hello"}', "messages: must be an array, got string"),
    ('{"messages": [], "task": "t"}', "messages: is empty"),
    ('{"messages": [["user", "hi"]]}', "messages[0]: expected a JSON object, got array"),
    ('{"messages": [{"role": "assistant", "content": "x"}], "task": 3}', "task: must be a string"),
    ('{"prompt": "p", "completion": "<|endoftext|>"}', "completion: has no assistant turn"),
    ('{"instruction": "", "output": "o"}', "instruction: is empty"),
    ('{"instruction": "i", "output": ["o"]}', "output: must be a string, got array"),
    ('{"prompt": [{"role": "user", "content": "q"}], "chosen": "a", "rejected": "b"}', "looks like preference pairs"),
    ('{"foo": 1}', 'matches no instruction format (keys: "foo")'),
]  # fmt: skip


@pytest.mark.parametrize("line, why", BAD_LINES)
def test_a_bad_line_names_file_line_and_field(tmp_path, line, why):
    path = _jsonl(tmp_path / "bad.jsonl", ["", line])  # the blank line 1 is not a record
    with pytest.raises(LmforgeError) as e:
        read_instructions(path)
    msg = str(e.value)
    assert msg.startswith(f"{path}:2: ") and why in msg, msg
    assert "\n" not in msg and "skip_bad_lines" in msg


def test_skip_bad_lines_counts_them_and_keeps_the_first_reasons(tmp_path):
    rows = [WORLD_ROW] + [line for line, _ in BAD_LINES[:7]] + ["", WORLD_ROW]
    path = _jsonl(tmp_path / "bad.jsonl", rows)
    result = read_instructions(path, skip_bad_lines=True)
    assert len(result.conversations) == 2 and result.read == 2
    counts = result.files[0]
    assert counts.skipped == 7 and len(counts.reasons) == 5
    assert counts.reasons[0].startswith(f"{path}:2: malformed JSON")
    assert counts.reasons[4].startswith(f"{path}:6: ")
    assert "7 bad lines skipped" in result.summary()


def test_a_file_starting_with_a_bracket_is_jsonl_if_its_first_line_is_whole(tmp_path):
    jsonl = _jsonl(tmp_path / "a.jsonl", ['["a list"]', WORLD_ROW])
    with pytest.raises(LmforgeError, match=r"a\.jsonl:1: expected a JSON object, got array"):
        read_instructions(jsonl)
    assert read_instructions(jsonl, skip_bad_lines=True).read == 1
    minified = tmp_path / "b.json"
    minified.write_text(json.dumps(SHAREGPT) + "\n")  # one line: an array of records
    assert len(read_instructions(minified).conversations) == 2


def test_empty_and_recordless_files_are_one_line_errors(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(LmforgeError, match="empty.jsonl: file is empty"):
        read_instructions(empty)
    blank = tmp_path / "blank.jsonl"
    blank.write_text("\n  \n\n")
    with pytest.raises(LmforgeError, match="blank.jsonl: holds no instruction records$"):
        read_instructions(blank)
    bad = _jsonl(tmp_path / "bad.jsonl", ["{oops", "[1]"])
    with pytest.raises(
        LmforgeError,
        match=r"holds no instruction records; 2 bad lines skipped, first: .*bad\.jsonl:1: malformed",
    ):
        read_instructions(bad, skip_bad_lines=True)
    with pytest.raises(LmforgeError, match="no such file"):
        read_instructions(tmp_path / "missing.jsonl")


def test_a_folder_may_hold_empty_and_all_bad_files_but_not_only_those(tmp_path):
    folder = tmp_path / "t0"
    _jsonl(folder / "ag_news_classify.jsonl", [{"prompt": "p", "completion": "World<|endoftext|>"}])
    (folder / "trec_fine_grained_ABBR.jsonl").write_text("")
    _jsonl(folder / "trec_trec1.jsonl", [{"prompt": "p", "completion": "<|endoftext|>"}])
    with pytest.raises(LmforgeError, match="trec_trec1.jsonl:1: completion"):
        read_instructions(folder)
    result = read_instructions(folder, skip_bad_lines=True)
    assert len(result.conversations) == 1
    assert [f.empty for f in result.files] == [False, True, False]
    assert result.files[2].skipped == 1 and "empty, passed over" in result.summary()
    only_empty = tmp_path / "nothing"
    only_empty.mkdir()
    (only_empty / "a.jsonl").write_text("")
    with pytest.raises(LmforgeError, match="no instruction records in 1 files"):
        read_instructions(only_empty)


def test_a_line_longer_than_text_limit_is_a_bad_line(tmp_path):
    long_row = dict(
        WORLD_ROW,
        messages=[{"role": "user", "content": "x" * 5000}, {"role": "assistant", "content": "y"}],
    )
    path = _jsonl(tmp_path / "long.jsonl", [WORLD_ROW, long_row, WORLD_ROW])
    with pytest.raises(
        LmforgeError,
        match=r"long\.jsonl:2: record of 5,.* characters is longer than text_limit \(1,000\)",
    ):
        read_instructions(path, text_limit=1000)
    result = read_instructions(path, text_limit=1000, skip_bad_lines=True)
    assert len(result.conversations) == 2 and result.skipped == 1
    assert len(read_instructions(path).conversations) == 3


@pytest.mark.parametrize(
    "text, why",
    [
        ('[{"conversations": []}, {"oops"}]', "record 1: malformed JSON"),
        ('[{"id": "a", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}', "not closed"),
        ('[{"id": "a", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},]', "comma before the closing"),
        ('[{"id": "a", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}] x', "text after the closing"),
        ('[{"id": "a", "conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]} {"id": "b"}]', "expected , or ]"),
    ],
)  # fmt: skip
def test_a_broken_json_array_stops_with_its_line(tmp_path, text, why):
    path = tmp_path / "chat.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(LmforgeError, match=f"chat.json:1: .*{why}.*cannot be read past"):
        read_instructions(path, skip_bad_lines=True)


def test_json_array_is_streamed_across_chunk_boundaries(tmp_path, monkeypatch):
    """With a tiny read size, records, strings, escapes and numbers are cut mid-way."""
    rows = [
        {"id": i, "n": 12345 + i, "conversations": [
            {"from": "human", "value": f"question \"{i}\" \\ caf\u00e9 \u2603 \U0001f600"},
            {"from": "gpt", "value": "answer " * (i % 4 + 1)},
        ]}
        for i in range(12)
    ]  # fmt: skip
    path = tmp_path / "chat.json"
    path.write_text("\ufeff" + json.dumps(rows, indent=1, ensure_ascii=False), encoding="utf-8")
    monkeypatch.setattr(records_module, "_CHUNK", 7)
    convs = read_instructions(path).conversations
    assert [c.to_dicts()[0]["content"] for c in convs] == [
        r["conversations"][0]["value"] for r in rows
    ]
    assert [c.meta["n"] for c in convs] == [r["n"] for r in rows]
    # Lines reported for array records are where each record starts.
    bad = [dict(r) for r in rows]
    bad[5]["conversations"] = "nope"
    path.write_text(json.dumps(bad, indent=1), encoding="utf-8")
    result = read_instructions(path, skip_bad_lines=True)
    assert result.skipped == 1
    lines = json.dumps(bad, indent=1).split("\n")
    record_starts = [i + 1 for i, text in enumerate(lines) if text == " {"]
    assert result.reasons[0].startswith(
        f"{path}:{record_starts[5]}: record 5 (id 5): conversations: must be an array"
    )


# ---------------------------------------------------------------------------
# The real files (a few records each) and the world


def test_first_records_of_the_shared_files(shared_data, tmp_path):
    t0 = shared_data / "instructions" / "t0_templates" / "ag_news_classify_question_first.jsonl"
    (c,) = read_instructions(_head(t0, tmp_path / "t0" / t0.name, 1)).conversations
    assert (c.meta["task"], c.meta["template"]) == ("ag_news", "classify_question_first")
    assert "<|endoftext|>" not in c.messages[1].content and c.messages[1].content

    seed = shared_data / "instructions" / "self_instruct_seed_tasks.jsonl"
    convs = read_instructions(_head(seed, tmp_path / "seed.jsonl", 3)).conversations
    assert len(convs) == 3 and all(c.meta["task"] == "self_instruct" for c in convs)

    for name in ("gsm8k_train.jsonl", "gsm8k_test.jsonl"):
        gsm = _head(shared_data / "math" / name, tmp_path / name, 20)
        convs = read_instructions(gsm).conversations
        assert len(convs) == 20
        assert not any("<<" in c.messages[1].content for c in convs)
        assert all(c.messages[1].content.endswith(f"#### {c.meta['answer']}") for c in convs)

    # A JSON array read lazily: only the first records are parsed.
    share = shared_data / "chat" / "sharegpt_conversations.json"
    first = list(itertools.islice(iter_conversations(share, ReadOptions()), 3))
    assert [c.meta["id"] for c in first] == ["identity_0", "identity_1", "identity_2"]
    assert first[0].messages[0].role == "user" and first[0].messages[1].role == "assistant"


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("world") / "w"
    build_tiny_world(out, train_per_family=10)
    return out


def test_every_world_instruction_and_dialogue_record_reads(world):
    for folder in ("instructions", "dialogues"):
        result = read_instructions(world / folder)
        lines = sum(
            1 for p in (world / folder).glob("*.jsonl") for s in p.read_text().splitlines() if s
        )
        assert result.read == len(result.conversations) == lines
        assert all(c.has_assistant and c.meta.get("task") for c in result.conversations)
        assert all(c.meta["extractor"] == "checker" for c in result.conversations)
    # Every world answer scores 1.0 against its own target.
    convs = read_instructions(world / "instructions" / "test.jsonl").conversations
    assert all(score(c.meta, c.messages[-1].content) == 1.0 for c in convs)
    with pytest.raises(LmforgeError, match="looks like preference pairs"):
        read_instructions(world / "preferences" / "train.jsonl")


def test_world_files_copied_stay_byte_for_byte_readable(world, tmp_path):
    """A reader never writes: the world folder is unchanged after reading."""
    before = {p: p.read_bytes() for p in (world / "instructions").glob("*.jsonl")}
    read_instructions(world / "instructions")
    assert {p: p.read_bytes() for p in (world / "instructions").glob("*.jsonl")} == before
    shutil.copytree(world / "instructions", tmp_path / "copy")
    assert len(read_instructions(tmp_path / "copy").conversations) == sum(
        len(b.splitlines()) for b in before.values()
    )


# ---------------------------------------------------------------------------
# Property tests: valid records round-trip, garbage never escapes as another exception

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)
_content = st.text(max_size=30)  # lone surrogates too: JSON escapes them
_turn = st.tuples(st.sampled_from(["user", "assistant"]), _content)
_meta_value = st.recursive(
    st.none() | st.booleans() | st.integers() | _text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=6,
)
_meta = st.dictionaries(st.from_regex(r"x_[a-z]{1,6}", fullmatch=True), _meta_value, max_size=3)
# A system message only ever comes first (a later one is a bad record).
_history = st.tuples(st.lists(st.tuples(st.just("system"), _content), max_size=1),
                     st.lists(_turn, max_size=4)).map(lambda t: t[0] + t[1])  # fmt: skip
_conversation = st.tuples(
    _history,
    st.text(min_size=1, max_size=20).filter(str.strip),
    _meta,
)
_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _turns(conv) -> list[tuple[str, str]]:
    before, reply, _ = conv
    return [*before, ("assistant", reply)]


@_SETTINGS
@given(
    convs=st.lists(_conversation, min_size=1, max_size=4),
    layout=st.sampled_from(["jsonl", "sharegpt-array", "sharegpt-jsonl"]),
)
def test_random_valid_records_round_trip(tmp_path, convs, layout):
    speaker = {"system": "system", "user": "human", "assistant": "gpt"}
    if layout == "jsonl":
        rows = [
            {"messages": [{"role": r, "content": c} for r, c in _turns(x)], **x[2]} for x in convs
        ]
    else:
        rows = [
            {"conversations": [{"from": speaker[r], "value": c} for r, c in _turns(x)], **x[2]}
            for x in convs
        ]
    path = tmp_path / ("data.json" if layout == "sharegpt-array" else "data.jsonl")
    if layout == "sharegpt-array":
        path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    got = read_instructions(path).conversations
    assert [[(m.role, m.content) for m in c.messages] for c in got] == [_turns(x) for x in convs]
    assert [c.meta for c in got] == [x[2] for x in convs]


_garbage_line = st.one_of(
    _text,
    _meta_value.map(json.dumps),
    st.dictionaries(
        st.sampled_from(["messages", "conversations", "prompt", "completion", "instruction",
                         "input", "output", "instances", "question", "answer", "role", "task"]),
        _meta_value, max_size=4,
    ).map(json.dumps),
    st.lists(st.dictionaries(st.sampled_from(["role", "content", "from", "value"]), _meta_value, max_size=3), max_size=3)
    .map(lambda ms: json.dumps({"messages": ms})),
)  # fmt: skip


@_SETTINGS
@given(
    lines=st.lists(_garbage_line, min_size=1, max_size=6),
    skip=st.booleans(),
    array=st.booleans(),
    fmt=st.sampled_from(["auto", "messages", "sharegpt", "gsm8k", "alpaca", "self_instruct", "prompt_completion"]),
)  # fmt: skip
def test_garbage_gives_lmforge_error_never_another_exception(tmp_path, lines, skip, array, fmt):
    path = tmp_path / "junk.jsonl"
    text = ("[" + ",\n".join(lines) + "]") if array else "\n".join(lines)
    path.write_text(text, encoding="utf-8")
    try:
        result = read_instructions(path, skip_bad_lines=skip, fmt=fmt)
    except LmforgeError as e:
        assert "\n" not in str(e)
        return
    assert all(c.has_assistant for c in result.conversations)
