"""Preference data: the readers (pairs, chat, HH-RLHF, rankings), margins, and the pairwise batches."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_tokenizers_corpus import write_corpus

from lmforge.common import LmforgeError
from lmforge.data.preference_batches import (
    PairTokens,
    PreferenceBatches,
    render_pairs,
    render_response,
)
from lmforge.data.preferences import (
    RATING_TABLES,
    PreferencePair,
    load_rating_table,
    parse_hh_transcript,
    read_preferences,
    read_prompts,
)
from lmforge.tokenizers import TokenizerConfig, train_tokenizer
from lmforge.tokenizers.chat import Message, generation_prompt, render_chat

U, A, S = "user", "assistant", "system"


def write_jsonl(path: Path, rows: list, gz: bool = False) -> Path:
    """Rows as JSONL (a str row is written as the raw line, for malformed input)."""
    text = "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def hh(*turns: tuple[str, str]) -> str:
    """An HH-RLHF transcript of (role, text) turns."""
    return "".join(f"\n\n{'Human' if r == U else 'Assistant'}: {t}" for r, t in turns)


def msgs(*turns: tuple[str, str]) -> list[Message]:
    return [Message(r, t) for r, t in turns]


# -- formats -------------------------------------------------------------------------


def test_pairs_with_string_and_message_prompts_keep_every_other_field_in_meta(tmp_path):
    path = write_jsonl(
        tmp_path / "p.jsonl",
        [
            {"prompt": "2+2?", "chosen": "4", "rejected": "5", "task": "math", "answer": "4"},
            {
                "prompt": [
                    {"role": S, "content": "Be brief."},
                    {"role": U, "content": "hi"},
                    {"role": A, "content": "hello"},
                    {"role": U, "content": "capital of France?"},
                ],
                "chosen": "Paris",
                "rejected": "Rome",
                "margin": 2,
                "choices": ["Paris", "Rome"],
            },
        ],
    )
    read = read_preferences([str(path)])
    a, b = read.pairs
    assert a.prompt == msgs((U, "2+2?")) and (a.chosen, a.rejected, a.margin) == ("4", "5", 0.0)
    assert a.meta == {"task": "math", "answer": "4"} and a.where == f"{path}:1"
    assert b.prompt == msgs((S, "Be brief."), (U, "hi"), (A, "hello"), (U, "capital of France?"))
    assert (b.chosen, b.rejected, b.margin, b.meta) == (
        "Paris",
        "Rome",
        2.0,
        {"choices": ["Paris", "Rome"]},
    )
    assert read.by_format == {"pairs": 2} and read.files == [str(path)]
    assert read.summary() == "preferences: 2 pairs from 1 file (pairs 2)"


def test_chat_pairs_share_their_prefix_as_the_prompt(tmp_path):
    prefix = [{"role": S, "content": "sys"}, {"role": U, "content": "q"}]
    rows = [
        {
            "chosen": prefix + [{"role": A, "content": "good"}],
            "rejected": prefix + [{"role": A, "content": "bad"}],
            "rating": "Better",
            "id": 7,
        },
        # TRL's explicit-prompt layout: completions are one assistant message each
        {
            "prompt": [{"role": U, "content": "q2"}],
            "chosen": [{"role": A, "content": "yes"}],
            "rejected": [{"role": A, "content": "no"}],
        },
    ]
    read = read_preferences([str(write_jsonl(tmp_path / "c.jsonl", rows))])
    a, b = read.pairs
    assert a.prompt == msgs((S, "sys"), (U, "q")) and (a.chosen, a.rejected) == ("good", "bad")
    assert a.rating == "better" and a.margin == pytest.approx(2 / 3) and a.meta == {"id": 7}
    assert b.prompt == msgs((U, "q2")) and (b.chosen, b.rejected) == ("yes", "no")
    assert read.by_format == {"chat": 2}


@pytest.mark.parametrize(
    "row, needle",
    [
        (
            {
                "chosen": [{"role": U, "content": "q"}, {"role": A, "content": "a"}],
                "rejected": [{"role": U, "content": "other q"}, {"role": A, "content": "b"}],
            },
            "chosen[0]: chosen and rejected must share every message",
        ),
        (
            {
                "chosen": [{"role": U, "content": "q"}, {"role": A, "content": "a"}],
                "rejected": [{"role": A, "content": "b"}, {"role": U, "content": "q"}],
            },
            "rejected[1].role: must end with an assistant turn",
        ),
        (
            {"chosen": [{"role": A, "content": "a"}], "rejected": [{"role": A, "content": "b"}]},
            "chosen: holds only the answer",
        ),
    ],
)
def test_chat_pairs_that_do_not_share_a_prompt_are_refused(tmp_path, row, needle):
    path = write_jsonl(tmp_path / "c.jsonl", [row])
    with pytest.raises(LmforgeError) as e:
        read_preferences([str(path)])
    assert str(e.value).startswith(f"{path}:1: {needle}") and "\n" not in str(e.value)


def test_hh_transcripts_plain_and_gzipped_in_a_folder(tmp_path):
    rows = [
        {
            "chosen": hh((U, "hi"), (A, "hello"), (U, "how?"), (A, "fine")),
            "rejected": hh((U, "hi"), (A, "hello"), (U, "how?"), (A, "go away")),
        },
        {"chosen": hh((U, "x"), (A, "")), "rejected": hh((U, "x"), (A, "harm"))},
        # one side has an extra assistant turn: the answers do not reply to the same prompt
        {"chosen": hh((U, "q"), (A, "a1"), (A, "a2")), "rejected": hh((U, "q"), (A, "b"))},
        {"chosen": hh((U, "q"), (A, "a"), (U, "more?")), "rejected": hh((U, "q"), (A, "b"))},
    ]
    write_jsonl(tmp_path / "d" / "a.jsonl", rows[:2])
    write_jsonl(tmp_path / "d" / "b.jsonl.gz", rows[2:] + rows[:1], gz=True)
    (tmp_path / "d" / "notes.txt").write_text("not data")
    read = read_preferences([str(tmp_path / "d")])
    first, empty, again = read.pairs
    assert first.prompt == msgs((U, "hi"), (A, "hello"), (U, "how?"))
    assert (first.chosen, first.rejected) == ("fine", "go away")
    assert (again.prompt, again.chosen, again.rejected) == (first.prompt, "fine", "go away")
    assert empty.chosen == "" and read.empty_answers == 1
    assert read.skipped == {"diverging before the last turn": 1, "no final assistant turn": 1}
    assert read.files == [str(tmp_path / "d" / "a.jsonl"), str(tmp_path / "d" / "b.jsonl.gz")]
    assert again.where == f"{tmp_path / 'd' / 'b.jsonl.gz'}:3"
    assert read.summary() == (
        "preferences: 3 pairs from 2 files (hh 3); 1 with an empty answer; 2 skipped "
        "(diverging before the last turn 1, no final assistant turn 1)"
    )


def test_hh_with_the_prompt_split_off_reads_the_prompt_as_a_transcript(tmp_path):
    row = {
        "prompt": hh((U, "hi"), (A, "yo"), (U, "q")) + "\n\nAssistant:",
        "chosen": " good",
        "rejected": " bad",
    }
    (pair,) = read_preferences([str(write_jsonl(tmp_path / "h.jsonl", [row]))]).pairs
    assert pair.prompt == msgs((U, "hi"), (A, "yo"), (U, "q"))
    assert (pair.chosen, pair.rejected) == ("good", "bad")


def test_rankings_give_every_ordered_pair(tmp_path):
    path = write_jsonl(
        tmp_path / "r.jsonl", [{"prompt": "q", "ranking": ["best", "mid", "worst"], "src": "x"}]
    )
    read = read_preferences([str(path)])
    got = [(p.chosen, p.rejected, p.margin, p.meta["rank_pair"]) for p in read.pairs]
    assert got == [
        ("best", "mid", 0.0, (0, 1)),
        ("best", "worst", 0.0, (0, 2)),
        ("mid", "worst", 0.0, (1, 2)),
    ]
    assert all(p.meta["ranking_size"] == 3 and p.meta["src"] == "x" for p in read.pairs)
    assert read.by_format == {"ranking": 3}
    with pytest.raises(LmforgeError, match=r"r2.jsonl:1: ranking: must hold 2 to 8"):
        read_preferences(
            [str(write_jsonl(tmp_path / "r2.jsonl", [{"prompt": "q", "ranking": ["a"]}]))]
        )


def test_forced_format_and_mixed_files_in_a_glob(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    write_jsonl(tmp_path / "b.jsonl", [{"prompt": "q", "ranking": ["a", "b"]}])
    read = read_preferences([str(tmp_path / "*.jsonl")])
    assert read.by_format == {"pairs": 1, "ranking": 1}
    # Forced hh: a plain answer is not a transcript, and the error says what it needs.
    with pytest.raises(LmforgeError, match=r"a.jsonl:1: chosen: not an HH-RLHF transcript"):
        read_preferences([str(tmp_path / "a.jsonl")], fmt="hh")
    with pytest.raises(LmforgeError, match="fmt: got 'tsv'"):
        read_preferences([str(tmp_path / "a.jsonl")], fmt="tsv")


# -- margins -------------------------------------------------------------------------


def test_margin_wins_over_rating_and_ratings_go_through_the_table(tmp_path):
    rows = [
        {"prompt": "q", "chosen": "a", "rejected": "b", "margin": 0.5, "rating": "better"},
        {"prompt": "q", "chosen": "a", "rejected": "b", "rating": "Significantly Better"},
        {"prompt": "q", "chosen": "a", "rejected": "b", "rating": "slightly-better"},
        {"prompt": "q", "chosen": "a", "rejected": "b", "rating": "negligibly_better"},
        {"prompt": "q", "chosen": "a", "rejected": "b", "margin": None},
    ]
    path = str(write_jsonl(tmp_path / "m.jsonl", rows))
    small = [p.margin for p in read_preferences([path]).pairs]
    assert small == pytest.approx([0.5, 1.0, 1 / 3, 0.0, 0.0])
    large = [p.margin for p in read_preferences([path], rating_table="llama2-large").pairs]
    assert large == [0.5, 3.0, 1.0, 0.0, 0.0]
    assert [p.rating for p in read_preferences([path]).pairs][:3] == [
        "better",
        "significantly_better",
        "slightly_better",
    ]
    assert RATING_TABLES["llama2"]["better"] == pytest.approx(2 / 3)
    assert RATING_TABLES["llama2-large"] == {
        "significantly_better": 3,
        "better": 2,
        "slightly_better": 1,
        "negligibly_better": 0,
    }


def test_custom_rating_tables_from_yaml_json_and_dict(tmp_path):
    (tmp_path / "t.yaml").write_text("Much Better: 5\nA bit better: 0.5\n")
    (tmp_path / "t.json").write_text('{"much_better": 4}')
    assert load_rating_table(str(tmp_path / "t.yaml")) == {"much_better": 5.0, "a_bit_better": 0.5}
    assert load_rating_table(str(tmp_path / "t.json")) == {"much_better": 4.0}
    path = str(
        write_jsonl(
            tmp_path / "m.jsonl",
            [{"prompt": "q", "chosen": "a", "rejected": "b", "rating": "much better"}],
        )
    )
    assert read_preferences([path], rating_table=str(tmp_path / "t.yaml")).pairs[0].margin == 5.0
    assert read_preferences([path], rating_table={"much better": 9}).pairs[0].margin == 9.0
    with pytest.raises(
        LmforgeError,
        match=r"m.jsonl:1: rating: unknown rating 'much better'; allowed: better, negligibly_better",
    ):
        read_preferences([path])
    (tmp_path / "bad.yaml").write_text("better: lots\n")
    with pytest.raises(LmforgeError, match=r"bad.yaml: better: the margin must be a finite number"):
        load_rating_table(str(tmp_path / "bad.yaml"))
    with pytest.raises(LmforgeError, match="neither a preset .llama2, llama2-large. nor a file"):
        load_rating_table("llama3")


# -- bad input -----------------------------------------------------------------------

GOOD = {"prompt": "q", "chosen": "a", "rejected": "b"}


@pytest.mark.parametrize(
    "line, field, reason",
    [
        ('{"prompt": "q", "chosen": ', "malformed JSON", "bad line (not JSON)"),
        ({"prompt": "q", "rejected": "b"}, "chosen: missing", "bad line (chosen)"),
        ({"prompt": "q", "chosen": "a"}, "rejected: missing", "bad line (rejected)"),
        (
            {"prompt": "q", "chosen": 3, "rejected": "b"},
            "chosen: must be a string",
            "bad line (chosen)",
        ),
        ({**GOOD, "margin": "1"}, "margin: must be a number, got string '1'", "bad line (margin)"),
        ({**GOOD, "margin": True}, "margin: must be a number, got boolean", "bad line (margin)"),
        (
            '{"prompt": "q", "chosen": "a", "rejected": "b", "margin": NaN}',
            "margin: must be a finite",
            "bad line (margin)",
        ),
        ({**GOOD, "margin": -1}, "margin: must be >= 0", "bad line (margin)"),
        ({**GOOD, "rating": "meh"}, "rating: unknown rating 'meh'; allowed:", "bad line (rating)"),
        ({**GOOD, "prompt": "  "}, "prompt: is empty", "bad line (prompt)"),
        ({**GOOD, "prompt": []}, "prompt: is empty", "bad line (prompt)"),
        (
            {**GOOD, "prompt": [{"role": "bot", "content": "q"}]},
            "prompt[0].role: unknown role 'bot'",
            "bad line (prompt[].role)",
        ),
        (
            {**GOOD, "prompt": [{"role": U, "content": "q"}, {"role": A, "content": "x"}]},
            "prompt[1].role: the prompt must end with a user turn",
            "bad line (prompt[].role)",
        ),
        ({"messages": []}, "looks like chat or instruction data", "bad line"),
        ("[1, 2]", "expected a JSON object", "bad line"),
    ],
)
def test_each_bad_line_is_one_error_naming_file_line_and_field(tmp_path, line, field, reason):
    path = write_jsonl(tmp_path / "bad.jsonl", [GOOD, line])
    with pytest.raises(LmforgeError) as e:
        read_preferences([str(path)])
    msg = str(e.value)
    assert msg.startswith(f"{path}:2: {field}"), msg
    assert "\n" not in msg and msg.endswith("(or skip bad lines with skip_bad_lines)")
    read = read_preferences([str(path)], skip_bad_lines=True)
    assert len(read.pairs) == 1 and read.skipped == {reason: 1}
    assert read.bad_lines[0].startswith(f"{path}:2: ") and "1 skipped" in read.summary()


def test_identical_pairs_are_counted_and_left_out(tmp_path):
    rows = [
        {**GOOD, "chosen": "same", "rejected": "same"},
        {**GOOD, "chosen": "7", "rejected": "7   "},  # the world's sloppy spacing: kept
        GOOD,
    ]
    read = read_preferences([str(write_jsonl(tmp_path / "i.jsonl", rows))])
    assert [p.rejected for p in read.pairs] == ["7   ", "b"] and read.identical == 1
    assert "1 identical left out" in read.summary()
    only_same = write_jsonl(tmp_path / "s.jsonl", rows[:1])
    with pytest.raises(LmforgeError, match=r"no usable preference pairs in 1 files \(1 identical"):
        read_preferences([str(only_same)])


def test_missing_empty_and_broken_files(tmp_path):
    with pytest.raises(LmforgeError, match="no such file or folder"):
        read_preferences([str(tmp_path / "nope.jsonl")])
    (tmp_path / "e.jsonl").write_text("")
    with pytest.raises(LmforgeError, match="e.jsonl: file is empty"):
        read_preferences([str(tmp_path / "e.jsonl")])
    (tmp_path / "x.jsonl.gz").write_bytes(b"not gzip at all")
    with pytest.raises(LmforgeError, match=r"x.jsonl.gz:1: not a readable gzip file"):
        read_preferences([str(tmp_path / "x.jsonl.gz")])
    with pytest.raises(LmforgeError, match="no preference files given"):
        read_preferences([])


# -- HH-RLHF -------------------------------------------------------------------------

MARKERS = ("\n\nHuman:", "\n\nAssistant:")
CONTENT = st.text(alphabet=st.sampled_from(list("ab :HumanAssistn\n\t.é")), max_size=20).filter(
    lambda s: not any(m in s for m in MARKERS)
)
TURNS = st.lists(st.tuples(st.sampled_from([U, A]), CONTENT), min_size=1, max_size=6)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(TURNS)
def test_hh_transcripts_parse_back_to_their_messages(turns):
    assert parse_hh_transcript(hh(*turns)) == msgs(*turns)


def test_hh_parser_errors_and_the_missing_leading_blank_line():
    assert parse_hh_transcript("Human: hi\n\nAssistant: yo") == msgs((U, "hi"), (A, "yo"))
    with pytest.raises(LmforgeError, match=r"^f:3: not an HH-RLHF transcript"):
        parse_hh_transcript("just text", "f:3")
    with pytest.raises(LmforgeError, match="text before the first"):
        parse_hh_transcript("preamble\n\nHuman: hi\n\nAssistant: yo")


def test_the_real_hh_rlhf_file_parses(shared_data):
    path = shared_data / "preferences" / "hh_rlhf_harmless_base_test.jsonl.gz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    read = read_preferences([str(path)])
    # 2,312 records: 2,307 usable, 5 whose sides differ before the last turn, 4 empty answers.
    assert len(read.pairs) >= 2_000 and read.by_format == {"hh": len(read.pairs)}
    assert len(read.pairs) + read.identical + sum(read.skipped.values()) == 2_312
    assert set(read.skipped) <= {"diverging before the last turn", "no final assistant turn"}
    assert all(p.prompt[-1].role == U and p.chosen != p.rejected for p in read.pairs)


# -- world and prompts ---------------------------------------------------------------


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    from world_helpers import build_tiny_world

    return build_tiny_world(tmp_path_factory.mktemp("prefworld") / "w")


def test_world_preferences_read_with_their_task_fields(world):
    path = world / "preferences" / "train.jsonl"
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    read = read_preferences([str(path)])
    assert len(read.pairs) == len(records) > 0 and not read.skipped and not read.identical
    llama2 = RATING_TABLES["llama2"]
    for p, r in zip(read.pairs, records):
        assert [m.role for m in p.prompt] == [m["role"] for m in r["prompt"]]
        assert p.prompt[-1].role == U and (p.chosen, p.rejected) == (r["chosen"], r["rejected"])
        want = r["margin"] if "margin" in r else llama2[r["rating"]] if "rating" in r else 0.0
        assert p.margin == want
        assert {"task", "answer", "answer_type"} <= set(p.meta)
        extra = {
            k: v
            for k, v in r.items()
            if k not in ("prompt", "chosen", "rejected", "margin", "rating")
        }
        assert p.meta == extra
    # Every preference file of the world (rankings too, where it writes them) reads.
    every = read_preferences([str(world / "preferences")])
    assert len(every.pairs) >= len(records) and not every.skipped


def test_read_prompts_from_every_kind_of_record(world, tmp_path):
    own = write_jsonl(
        tmp_path / "own.jsonl",
        [
            {"prompt": "say hi", "answer": "hi"},
            {"messages": [{"role": U, "content": "only a question"}]},
            {"instruction": "Add 2 and 2.", "output": "4"},  # alpaca
            {"chosen": hh((U, "q"), (A, "a")), "rejected": hh((U, "q"), (A, "b"))},
        ],
    )
    convs = read_prompts([str(own)])
    assert [c.messages for c in convs] == [
        msgs((U, "say hi")),
        msgs((U, "only a question")),
        msgs((U, "Add 2 and 2.")),
        msgs((U, "q")),
    ]
    assert convs[0].meta == {"answer": "hi", "where": f"{own}:1"}
    assert convs[2].meta["reference"] == "4"
    files = [
        world / "dialogues" / "val.jsonl",
        world / "instructions" / "val.jsonl",
        world / "preferences",
    ]
    convs = read_prompts([str(f) for f in files])
    assert all(c.messages[-1].role == U and "answer" in c.meta for c in convs)
    assert any(c.meta.get("task") == "dialogue" and len(c.messages) > 2 for c in convs)
    empty = write_jsonl(tmp_path / "none.jsonl", [{"messages": [{"role": A, "content": "x"}]}])
    with pytest.raises(LmforgeError, match="none.jsonl:1: messages: is empty"):
        read_prompts([str(empty)])
    with pytest.raises(LmforgeError, match="no prompts found"):
        read_prompts([str(empty)], skip_bad_lines=True)


# -- rendering and batches -----------------------------------------------------------


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    folder = tmp_path_factory.mktemp("preftok")
    return train_tokenizer(TokenizerConfig(kind="bpe", vocab_size=600), [write_corpus(folder)])


PROMPTS = [
    msgs((U, "What is two plus two?")),
    msgs((S, "Be brief."), (U, "hello there"), (A, "hi"), (U, "and you?")),
    msgs((U, "Name a colour.")),
]


def test_render_response_is_render_chat_of_the_whole_conversation(tok):
    for prompt in PROMPTS:
        ids, n = render_response(tok, prompt, "four, I think")
        assert ids == render_chat(tok, [*prompt, Message(A, "four, I think")]).ids
        assert ids[:n] == generation_prompt(tok, prompt)


def _pairs(k: int = 7) -> list[PreferencePair]:
    return [
        PreferencePair(
            PROMPTS[i % 3], f"good answer {i}", "bad" * (i % 3 + 1), 0.5 * i, where=f"f:{i}"
        )
        for i in range(k)
    ]


def test_render_pairs_share_the_prompt_and_end_with_each_answer(tok):
    tokens, stats = render_pairs(tok, _pairs(), max_len=256)
    assert stats.to_dict() == {"pairs": 7, "kept": 7, "truncated": 0, "dropped": 0, "identical": 0}
    for t, p in zip(tokens, _pairs()):
        assert (t.chosen, t.prompt_len) == render_response(tok, p.prompt, p.chosen)
        assert (t.rejected, t.prompt_len) == render_response(tok, p.prompt, p.rejected)
        assert (t.margin, t.where) == (p.margin, p.where)


def test_batch_layout_chosen_rows_then_rejected_rows(tok):
    tokens, _ = render_pairs(tok, _pairs(), max_len=256)
    src = PreferenceBatches(tokens, 3, pad_id=tok.pad_id, shuffle=False)
    b = src.next_batch()
    assert b["ids"].dtype == torch.int64 and b["response_mask"].dtype == torch.bool
    T = max(len(r) for t in tokens[:3] for r in (t.chosen, t.rejected))
    assert b["ids"].shape == (6, T) and b["response_mask"].shape == (6, T)
    assert b["index"].tolist() == [0, 1, 2]
    assert b["margin"].dtype == torch.float32 and b["margin"].tolist() == [0.0, 0.5, 1.0]
    rows = [t.chosen for t in tokens[:3]] + [t.rejected for t in tokens[:3]]
    assert b["lengths"].tolist() == [len(r) for r in rows]
    end = render_chat(tok, [Message(A, "")]).ids[-1]
    for r, row in enumerate(rows):
        n, start = len(row), tokens[r % 3].prompt_len
        assert b["ids"][r, :n].tolist() == row and (b["ids"][r, n:] == tok.pad_id).all()
        assert b["response_mask"][r].nonzero().flatten().tolist() == list(range(start, n))
        assert b["ids"][r, n - 1].item() == end  # the scalar head's position: the answer's <|end|>
    # The masked tokens are exactly the answer's content and its <|end|>.
    answer = tok.encode(_pairs()[1].chosen) + [end]
    assert b["ids"][1][b["response_mask"][1]].tolist() == answer


def test_resume_mid_epoch_gives_the_same_batches(tok):
    tokens, _ = render_pairs(tok, _pairs(), max_len=256)
    a = PreferenceBatches(tokens, 2, pad_id=tok.pad_id, seed=3)
    for _ in range(5):  # 10 pairs: into the second epoch
        a.next_batch()
    state = json.loads(json.dumps(a.state_dict()))
    assert a.epoch == pytest.approx(1 + 3 / 7)
    b = PreferenceBatches(tokens, 2, pad_id=tok.pad_id, seed=3)
    b.load_state_dict(state)
    for _ in range(4):
        x, y = a.next_batch(), b.next_batch()
        assert all(torch.equal(x[k], y[k]) for k in x)
    # Every epoch is a permutation of all pairs, and epochs are shuffled differently.
    c = PreferenceBatches(tokens, 7, pad_id=tok.pad_id, seed=3)
    e0, e1 = c.next_batch()["index"].tolist(), c.next_batch()["index"].tolist()
    assert sorted(e0) == sorted(e1) == list(range(7)) and e0 != e1
    with pytest.raises(
        LmforgeError, match="trained on 7 preference pairs but the data now gives 6"
    ):
        PreferenceBatches(tokens[:6], 2, pad_id=0).load_state_dict(state)


def test_two_ranks_together_make_the_one_rank_global_batch(tok):
    tokens, _ = render_pairs(tok, _pairs(), max_len=256)
    one = PreferenceBatches(tokens, 4, pad_id=tok.pad_id, seed=1)
    ranks = [
        PreferenceBatches(tokens, 2, pad_id=tok.pad_id, seed=1, rank=r, world_size=2)
        for r in (0, 1)
    ]
    for _ in range(4):
        g = one.next_batch()
        parts = [r.next_batch() for r in ranks]
        assert torch.cat([p["index"] for p in parts]).tolist() == g["index"].tolist()
        for p in parts:
            for i, idx in enumerate(p["index"].tolist()):
                B = len(p["index"])
                assert p["ids"][i, : p["lengths"][i]].tolist() == tokens[idx].chosen
                assert p["ids"][B + i, : p["lengths"][B + i]].tolist() == tokens[idx].rejected


def test_eval_batches_hold_each_pair_once_in_order_across_ranks(tok):
    tokens, _ = render_pairs(tok, _pairs(), max_len=256)  # 7 pairs, global batch 2 x 2
    per_rank = [
        PreferenceBatches(tokens, 2, pad_id=tok.pad_id, rank=r, world_size=2).eval_batches()
        for r in (0, 1)
    ]
    assert [len(b) for b in per_rank] == [2, 2]  # the same number of forwards on every rank
    got = [b["index"].tolist() for step in zip(*per_rank) for b in step]
    assert got == [[0, 1], [2, 3], [4, 5], [6]]
    single = PreferenceBatches(tokens, 4, pad_id=0, world_size=1).eval_batches()
    assert [b["index"].tolist() for b in single] == [[0, 1, 2, 3], [4, 5, 6]]
    tail = PreferenceBatches(tokens, 4, pad_id=0, rank=2, world_size=3).eval_batches()[-1]
    assert tail["ids"].shape == (0, 1) and tail["margin"].shape == (0,)  # a rank with none left


def test_long_pairs_lose_old_turns_then_prompt_tokens_and_long_answers_are_dropped(tok):
    history = [(U, "tell me a long story about the sea"), (A, "once upon a time")]
    prompt = msgs((S, "Be brief."), *history, *history, (U, "and then?"))
    long_user = msgs((U, "why " * 60))
    pairs = [
        PreferencePair(prompt, "it ended", "no idea"),
        PreferencePair(long_user, "because", "dunno"),
        PreferencePair(PROMPTS[0], "four " * 80, "five"),
        PreferencePair(PROMPTS[0], "4", "5"),
    ]
    max_len = 70  # the whole first prompt needs 103 tokens; system + last exchange + question 61
    tokens, stats = render_pairs(tok, pairs, max_len)
    assert stats.to_dict() == {"pairs": 4, "kept": 3, "truncated": 2, "dropped": 1, "identical": 0}
    fitted, cut, short = tokens
    end = render_chat(tok, [Message(A, "")]).ids[-1]
    for t, p in zip(tokens, [pairs[0], pairs[1], pairs[3]]):
        assert max(len(t.chosen), len(t.rejected)) <= max_len
        assert t.chosen[t.prompt_len :] == tok.encode(p.chosen) + [end]  # never cut
        assert t.rejected[t.prompt_len :] == tok.encode(p.rejected) + [end]
        assert t.chosen[: t.prompt_len] == t.rejected[: t.prompt_len]
    # The oldest exchange went whole, the system prompt stayed.
    kept = [prompt[0], *prompt[3:]]
    assert (fitted.chosen, fitted.prompt_len) == render_response(tok, kept, "it ended")
    # A single over-long user turn keeps its end next to the answer.
    full, n = render_response(tok, long_user, "because")
    assert cut.chosen == full[n - cut.prompt_len :]
    assert max(len(cut.chosen), len(cut.rejected)) == max_len  # the longer side fills the row
    assert (short.chosen, short.prompt_len) == render_response(tok, PROMPTS[0], "4")
    with pytest.raises(LmforgeError, match="no preference pair fits 70 tokens"):
        render_pairs(tok, pairs[2:3], max_len)


def test_sides_rendering_to_the_same_ids_are_left_out(tok):
    pair = PreferencePair(PROMPTS[0], "yes", "no")
    same = PreferencePair(PROMPTS[0], "x", "x")  # the reader drops these; a caller may not
    tokens, stats = render_pairs(tok, [pair, same], 64)
    assert len(tokens) == 1 and stats.identical == 1
    assert isinstance(tokens[0], PairTokens) and math.isclose(tokens[0].margin, 0.0)
