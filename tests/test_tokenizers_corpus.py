"""Training text for tokenizers (tokenizers/corpus.py), and the small generated corpora
the other tokenizer tests train on."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from lmforge.common import LmforgeError
from lmforge.tokenizers import corpus

EN_WORDS = (
    "the a of and to in is was he she it they we you king queen sword castle river horse "
    "run runs running ran walk walks walked walking speak speaks spoke speaking good better "
    "best house houses night day light lights old young"
).split()
RU_WORDS = (
    "и в не на я он она мы они король королева меч замок река лошадь бежать бежит бежал "
    "бегу говорить говорит говорил говорю дом дома домов ночь день свет старый молодой"
).split()
JA_WORDS = (
    "東京 大阪 日本 日本語 学校 先生 学生 友達 天気 今日 明日 昨日 食べる 飲む 行く 来る "
    "です ます でした ません は が を に で と の から まで ラーメン コーヒー テレビ"
).split()


def sentences(words: list[str], n: int, seed: int, joiner: str = " ") -> list[str]:
    """`n` random sentences of `words` (capitalised, with punctuation and some numbers)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        ws = [rng.choice(words) for _ in range(rng.randint(3, 12))]
        if rng.random() < 0.3:
            ws.insert(rng.randrange(len(ws)), str(rng.randint(0, 99999)))
        s = joiner.join(ws)
        out.append(s[:1].upper() + s[1:] + rng.choice([".", "!", "?", ",", "..."]))
    return out


def write_corpus(folder: Path, n: int = 400) -> Path:
    """English, Russian and Japanese lines with paragraphs: the tiny tokenizer training set."""
    lines = (
        sentences(EN_WORDS, n, seed=1)
        + sentences(RU_WORDS, n, seed=2)
        + sentences(JA_WORDS, n // 2, seed=3, joiner="")
    )
    text = ""
    for i, line in enumerate(lines):
        text += line + ("\n\n" if i % 7 == 6 else "\n")
    path = folder / "corpus.txt"
    path.write_text(text, encoding="utf-8")
    return path


def test_txt_chunks_rebuild_the_file_exactly(tmp_path, monkeypatch):
    path = write_corpus(tmp_path)
    monkeypatch.setattr(corpus, "CHUNK_CHARS", 500)
    monkeypatch.setattr(corpus, "READ_BYTES", 777)
    chunks = list(corpus.iter_documents([path]))
    assert len(chunks) > 10
    assert "".join(chunks) == path.read_text(encoding="utf-8")
    # Chunks break just before whitespace that follows a non-space: runs stay whole.
    assert all(len(c) <= 500 and not c[-1].isspace() for c in chunks[:-1])
    assert all(c[0].isspace() for c in chunks[1:])


def test_split_pieces_cuts_only_before_whitespace_after_text():
    rng = random.Random(5)
    alphabet = ["ab", "c", " ", "  ", "\n", "\n\n", "é", "東京", ".", "\t"]
    for _ in range(300):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
        limit = rng.randint(1, 40)
        blocks = [text[i : i + 7] for i in range(0, len(text), 7)]
        for spaces_only in (False, True):
            pieces = list(corpus.split_pieces(blocks, limit, spaces_only=spaces_only))
            assert "".join(pieces) == text and all(pieces)
            for a, b in zip(pieces, pieces[1:]):
                cut_ok = a[-1].strip() and (b[0] == " " if spaces_only else b[0].isspace())
                assert cut_ok or len(a) == limit  # else forced: no cut point in reach


def test_split_pieces_bounded_without_spaces():
    text = "x" * 1000
    pieces = list(corpus.split_pieces([text], 100))
    assert "".join(pieces) == text
    assert max(map(len, pieces)) <= corpus.HARD_LIMIT_FACTOR * 100


def test_one_long_line_reaches_the_trainer_in_pieces(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus, "CHUNK_CHARS", 1000)
    monkeypatch.setattr(corpus, "READ_BYTES", 4096)
    words = sentences(EN_WORDS, 2000, seed=9)
    path = tmp_path / "one.txt"
    path.write_text(" ".join(words), encoding="utf-8")  # no newline at all
    pieces = list(corpus.iter_documents([path]))
    assert len(pieces) > 50 and max(map(len, pieces)) <= 1000
    assert "".join(pieces) == path.read_text(encoding="utf-8")
    # Unigram mode: cut at a space, which is dropped (the `▁` prefix stands for it).
    dropped = list(corpus.iter_documents([path], drop_space=True))
    assert " ".join(dropped) == path.read_text(encoding="utf-8")


def test_jsonl_yields_text_fields(tmp_path):
    path = tmp_path / "docs.jsonl"
    rows = [{"text": "first doc"}, {"text": "второй\nдокумент", "id": 2}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n\n")
    assert list(corpus.iter_documents([path])) == ["first doc", "второй\nдокумент"]


@pytest.mark.parametrize(
    "line, needle",
    [('{"title": "x"}', "has no `text` field"), ('{"text": 5}', "non-string `text`")],
)
def test_jsonl_without_text_names_the_line(tmp_path, line, needle):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"text": "ok"}\n' + line + "\n")
    with pytest.raises(LmforgeError, match=rf"docs\.jsonl:2: .*{needle}"):
        list(corpus.iter_documents([path]))


def test_not_utf8_past_the_checked_head_is_named(tmp_path):
    path = tmp_path / "late.txt"
    path.write_bytes(b"a" * (1 << 20) + b"\nok\n" + "кириллица".encode("cp1251") + b"\n")
    files = corpus.resolve_inputs([path])  # the 1 MiB head check passes
    with pytest.raises(LmforgeError, match=r"late.txt:3: is not UTF-8.*iconv -f cp1251"):
        list(corpus.iter_documents(files))


def test_resolve_inputs_expands_folders_and_refuses_other_types(tmp_path):
    (tmp_path / "a.txt").write_text("alpha\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.jsonl").write_text('{"text": "beta"}\n')
    (tmp_path / "notes.md").write_text("ignored by the folder walk\n")
    assert [p.name for p in corpus.resolve_inputs([tmp_path])] == ["a.txt", "b.jsonl"]
    with pytest.raises(LmforgeError, match=r"notes\.md: unsupported file type"):
        corpus.resolve_inputs([tmp_path / "notes.md"])


def test_iter_lines_splits_only_at_newlines():
    docs = ["one\ntwo\u2028still two\n\n  \nthree"]
    assert list(corpus.iter_lines(docs)) == ["one", "two\u2028still two", "three"]
