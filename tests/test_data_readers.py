"""Corpus readers: every input format, NFC, HTML stripping, input expansion, clear errors."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_data_helpers import write_jsonl

from lmforge.common import LmforgeError
from lmforge.data.html_text import html_to_text
from lmforge.data.readers import iter_documents, resolve_sources


def docs(*inputs, **kw):
    return [(d.text, d.line) for d in iter_documents([str(i) for i in inputs], **kw)]


def test_txt_blank_line_documents_keep_inner_lines(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("first doc\n  indented line\n\n\n\nsecond\n \nthird\n", encoding="utf-8")
    assert docs(p) == [("first doc\n  indented line", 1), ("second", 6), ("third", 8)]


def test_txt_file_and_line_modes(tmp_path):
    p = tmp_path / "a.txt"
    p.write_bytes(b"one\r\ntwo\r\n\r\nthree\r\n")  # CRLF becomes \n
    assert docs(p, txt_docs="file") == [("one\ntwo\n\nthree\n", 1)]
    assert docs(p, txt_docs="line") == [("one", 1), ("two", 2), ("three", 4)]
    p.write_bytes(b"\xef\xbb\xbfbom first\n")  # UTF-8 byte-order mark
    assert docs(p) == [("bom first", 1)]
    assert docs(p, txt_docs="file") == [("bom first\n", 1)]


def test_jsonl_text_field_rows_and_nulls(tmp_path):
    p = write_jsonl(tmp_path / "a.jsonl", [{"text": "x"}, {"text": None}, {"text": "y", "id": 3}])
    assert docs(p) == [("x", 1), ("y", 3)]
    q = write_jsonl(tmp_path / "b.jsonl", [{"body": "x"}])
    assert docs(q, text_field="body") == [("x", 1)]


@pytest.mark.parametrize(
    "lines, needle",
    [
        (['{"text": "a"}', '{"text": "b"}', '{"text": oops}'], ":3: malformed JSON"),
        (['{"text": "a"}', '{"body": "b"}'], ':2: no "text" field'),
        (['{"body": "b", "id": 1}'], r'has: "body", "id"\); name .* with --text-field'),
        (
            ['{"text": "a", oops}'],
            r":1: malformed JSON \(Expecting .* at column 15\); .*fix or remove line 1$",
        ),
        (['{"text": 5}'], ':1: field "text" must be a string'),
    ],
)
def test_jsonl_errors_name_the_line(tmp_path, lines, needle):
    p = tmp_path / "bad.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(LmforgeError, match=needle):
        docs(p)


def test_parquet_streams_row_groups_in_order(tmp_path):
    p = tmp_path / "a.parquet"
    texts = [f"row {i}" for i in range(25)]
    texts[7] = None
    pq.write_table(pa.table({"id": list(range(25)), "text": texts}), p, row_group_size=4)
    assert pq.ParquetFile(p).num_row_groups == 7
    got = docs(p)
    assert [t for t, _ in got] == [t for t in texts if t is not None]
    assert got[7] == ("row 8", 9)  # 1-based rows, the null row skipped


def test_parquet_missing_column_and_corrupt_file(tmp_path):
    p = tmp_path / "a.parquet"
    pq.write_table(pa.table({"body": ["x"]}), p)
    with pytest.raises(LmforgeError, match="no 'text' column \\(columns: body\\)"):
        docs(p)
    bad = tmp_path / "b.parquet"
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(LmforgeError, match="not a valid Parquet file"):
        docs(bad)


def _save_dataset(folder, texts, n_files=1):
    """What datasets.save_to_disk writes for a Dataset: Arrow IPC streams + state.json."""
    folder.mkdir(parents=True)
    names = []
    per = -(-len(texts) // n_files)
    for i in range(n_files):
        name = f"data-{i:05d}-of-{n_files:05d}.arrow"
        table = pa.table(
            {
                "text": texts[i * per : (i + 1) * per],
                "label": [0] * len(texts[i * per : (i + 1) * per]),
            }
        )
        with (
            pa.OSFile(str(folder / name), "wb") as sink,
            pa.ipc.new_stream(sink, table.schema) as w,
        ):
            w.write_table(table, max_chunksize=2)
        names.append(name)
    state = {"_data_files": [{"filename": n} for n in names], "_split": "train"}
    (folder / "state.json").write_text(json.dumps(state))
    (folder / "dataset_info.json").write_text(json.dumps({"features": {"text": {}}}))


def test_saved_hf_dataset_folder(tmp_path):
    texts = [f"doc {i}" for i in range(7)]
    _save_dataset(tmp_path / "ds", texts, n_files=2)
    assert [s.kind for s in resolve_sources([tmp_path / "ds"])] == ["hf-folder"]
    got = docs(tmp_path / "ds")
    assert got == [(t, i + 1) for i, t in enumerate(texts)]  # rows numbered across files


def test_saved_hf_dataset_dict_reads_train(tmp_path):
    root = tmp_path / "dd"
    _save_dataset(root / "train", ["t1", "t2"])
    _save_dataset(root / "test", ["e1"])
    (root / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
    assert [t for t, _ in docs(root)] == ["t1", "t2"]
    assert [t for t, _ in docs(root / "test")] == ["e1"]
    (root / "dataset_dict.json").write_text(json.dumps({"splits": ["test"]}))
    with pytest.raises(LmforgeError, match="no 'train' split"):
        docs(root)


def test_arrow_ipc_file_format(tmp_path):
    p = tmp_path / "a.arrow"
    table = pa.table({"text": ["a", "b"]})
    with pa.OSFile(str(p), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)
    assert docs(p) == [("a", 1), ("b", 2)]


def test_folders_recursive_and_globs(tmp_path):
    (tmp_path / "sub" / "deep").mkdir(parents=True)
    (tmp_path / "sub" / "b.txt").write_text("bee", encoding="utf-8")
    (tmp_path / "sub" / "deep" / "c.jsonl").write_text('{"text": "sea"}\n', encoding="utf-8")
    (tmp_path / "sub" / "notes.md").write_text("ignored", encoding="utf-8")
    (tmp_path / "a.txt").write_text("ay", encoding="utf-8")
    assert [t for t, _ in docs(tmp_path / "sub")] == ["bee", "sea"]
    assert [t for t, _ in docs(f"{tmp_path}/**/*.txt")] == ["ay", "bee"]


def test_nfc_normalisation(tmp_path):
    p = tmp_path / "a.txt"
    p.write_text("Cafe\u0301 and \u0419", encoding="utf-8")  # e + combining acute
    ((text, _),) = docs(p)
    assert text == "Caf\u00e9 and \u0419"
    assert len(text) == len("Café and Й")


def test_strip_html_in_reader(tmp_path):
    p = write_jsonl(
        tmp_path / "a.jsonl",
        [
            {
                "text": "<html><head><style>p{}</style></head><body><p>Hello <b>world</b> &amp; co"
                "</p><script>alert(1)</script><ul><li>one</li><li>two</li></ul></body></html>"
            }
        ],
    )
    assert docs(p, strip_html=True) == [("Hello world & co\none\ntwo", 1)]
    assert "<b>" in docs(p)[0][0]  # untouched without the flag


def test_html_to_text_rules():
    assert html_to_text("plain <no markup> kept") == "plain kept"  # '<no markup>' is a tag
    assert html_to_text("no markup at all") == "no markup at all"
    assert html_to_text("<div>a<br>b</div><div>c</div>") == "a\nb\nc"
    assert html_to_text("<p>  lots   of\n spaces </p>") == "lots of spaces"
    assert html_to_text("<pre>x  = 1\n  y</pre>") == "x  = 1\n  y"
    assert html_to_text("<p>caf&eacute; &lt;tag&gt;</p><!-- comment -->") == "café <tag>"


def test_unsupported_file_and_missing_input(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("x,y\n", encoding="utf-8")
    with pytest.raises(LmforgeError, match="unsupported file type '.csv'"):
        docs(p)
    with pytest.raises(LmforgeError, match="no such file"):
        docs(tmp_path / "missing.txt")


def test_non_utf8_after_the_first_mebibyte_names_the_line(tmp_path):
    p = tmp_path / "late.txt"
    p.write_bytes(
        b"ok line\n" * 140_000 + "\u041f\u0440\u0438\u0432\u0435\u0442\n".encode("cp1251")
    )
    with pytest.raises(LmforgeError, match=r"late.txt:140001: is not UTF-8"):
        docs(p)


def test_hub_dataset_needs_datasets_package():
    try:
        import datasets  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("datasets is installed; the hub path needs the network")
    with pytest.raises(LmforgeError, match="pip install datasets"):
        docs("hf:roneneldan/TinyStories")


@pytest.mark.parametrize(
    "text, encoding, guess, word",
    [
        ("Le café était très bon. Müller sagt: schön!\n", "cp1252", "cp1252", "café"),
        ("Привет, как дела? Это текст.\n", "cp1251", "cp1251", "Привет,"),
    ],
)
def test_not_utf8_names_the_likely_encoding(tmp_path, text, encoding, guess, word):
    p = tmp_path / "old.txt"
    p.write_bytes(b"fine line\n" + text.encode(encoding))
    with pytest.raises(LmforgeError) as e:
        docs(p)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{p}:2: is not UTF-8")
    assert f"iconv -f {guess} -t utf-8" in msg and repr(word) in msg
    other = "cp1251" if guess == "cp1252" else "cp1252"
    assert f"-f {other} if the text reads wrong" in msg


@pytest.mark.parametrize("mode", ["blank-line", "file", "line"])
def test_txt_read_in_small_blocks_gives_the_same_documents(tmp_path, monkeypatch, mode):
    import lmforge.data.readers as readers

    p = tmp_path / "a.txt"
    p.write_bytes(
        "\ufeffFirst  para\r\nstill first é\n\n  \nSecond one, a long line "
        "of words\r\n\n\nthird\n".encode()
    )
    whole = docs(p, txt_docs=mode)
    monkeypatch.setattr(readers, "_READ_BYTES", 3)
    assert docs(p, txt_docs=mode) == whole


def test_split_hands_documents_on_in_pieces(tmp_path):
    from lmforge.tokenizers.corpus import split_pieces

    text = " ".join(f"word{i}" for i in range(3000))
    (tmp_path / "a.txt").write_text(f"short doc\n\n{text}\n\nlast\n", encoding="utf-8")
    write_jsonl(tmp_path / "b.jsonl", [{"text": text}])
    got = list(
        iter_documents(
            [tmp_path / "a.txt", tmp_path / "b.jsonl"],
            split=lambda blocks: split_pieces(blocks, 1000),
        )
    )
    whole: dict = {}
    for d in got:
        whole.setdefault((d.source, d.line), []).append(d)
        assert len(d.text) <= 1000
    texts = {k: "".join(p.text for p in v) for k, v in whole.items()}
    assert list(texts.values()) == ["short doc", text, "last", text]
    for pieces in whole.values():
        assert [p.part for p in pieces] == list(range(len(pieces)))
        assert [p.last for p in pieces] == [False] * (len(pieces) - 1) + [True]
