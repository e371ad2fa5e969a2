"""Input checks shared by every reader: empty, binary, non-UTF-8, malformed JSONL, --input forms."""

from __future__ import annotations

import pytest

from lmforge.common import (
    LmforgeError,
    atomic_write_text,
    check_text_file,
    expand_inputs,
    iter_jsonl,
)


def test_check_text_file_rejects_bad_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(LmforgeError, match="empty"):
        check_text_file(empty)
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"abc\x00\x01\x02" * 10)
    with pytest.raises(LmforgeError, match="binary"):
        check_text_file(binary)
    cp1251 = tmp_path / "ru.txt"
    cp1251.write_bytes("Война и мир, том первый.".encode("cp1251"))
    with pytest.raises(LmforgeError, match=r"not UTF-8.*iconv -f cp1251"):
        check_text_file(cp1251)
    with pytest.raises(LmforgeError, match="no such file"):
        check_text_file(tmp_path / "missing.txt")
    ok = tmp_path / "ok.txt"
    ok.write_text("Привет, мир! 你好 🙂", encoding="utf-8")
    assert check_text_file(ok) == ok


def test_utf8_character_cut_at_probe_boundary_is_accepted(tmp_path):
    p = tmp_path / "long.txt"
    # 'я' is two bytes; an odd-length ASCII prefix puts one across the 1 MiB probe boundary.
    p.write_bytes(b"a" * ((1 << 20) - 1) + "яя".encode())
    assert check_text_file(p) == p


def test_iter_jsonl_names_the_malformed_line(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "a"}\n\n{"text": "b"}\n{"text": broken}\n', encoding="utf-8")
    with pytest.raises(LmforgeError, match=r"d\.jsonl:4: malformed JSON"):
        list(iter_jsonl(p))
    p.write_text('{"text": "a"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(LmforgeError, match=r":2: expected a JSON object"):
        list(iter_jsonl(p))


def test_expand_inputs_files_folders_globs(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "b").mkdir()
    for name in ["a/x.txt", "a/b/y.txt", "a/b/z.jsonl", "a/skip.bin"]:
        (tmp_path / name).write_text("hi")
    folder = expand_inputs([tmp_path / "a"], (".txt", ".jsonl"))
    # Sorted by path, so the order never depends on the file system.
    assert [p.name for p in folder] == ["y.txt", "z.jsonl", "x.txt"]
    globbed = expand_inputs([str(tmp_path / "a" / "**" / "*.txt")], (".txt",))
    assert {p.name for p in globbed} == {"x.txt", "y.txt"}
    both = expand_inputs([tmp_path / "a" / "x.txt", tmp_path / "a"], (".txt",))
    assert [p.name for p in both] == ["x.txt", "y.txt"]  # repeats dropped, order kept
    with pytest.raises(LmforgeError, match="matched no files"):
        expand_inputs([str(tmp_path / "*.nothing")], (".txt",))
    with pytest.raises(LmforgeError, match="no such file or folder"):
        expand_inputs([tmp_path / "nope"], (".txt",))


def test_atomic_write_leaves_no_temp(tmp_path):
    p = tmp_path / "sub" / "f.txt"
    atomic_write_text(p, "one")
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    assert [q.name for q in p.parent.iterdir()] == ["f.txt"]


def test_replace_folder_swaps_whole_folders(tmp_path):
    from lmforge.common import replace_folder

    out, tmp = tmp_path / "out", tmp_path / "tmp"
    tmp.mkdir()
    (tmp / "new.txt").write_text("new")
    replace_folder(tmp, out)  # no old folder
    assert (out / "new.txt").read_text() == "new" and not tmp.exists()
    tmp.mkdir()
    (tmp / "newer.txt").write_text("newer")
    replace_folder(tmp, out)  # replaces the old one; no leftovers beside it
    assert [p.name for p in out.iterdir()] == ["newer.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_print0_logs_through_the_lmforge_logger_and_quiet_silences_it(capsys):
    import logging

    from lmforge.common import get_logger, print0, set_quiet

    seen = []

    class Keep(logging.Handler):
        def emit(self, record):
            seen.append(record.getMessage())

    keep = Keep()
    get_logger().addHandler(keep)
    set_quiet(False)  # an earlier in-process `--quiet` run may have left it on
    try:
        print0("step", 3)
        set_quiet(True)
        print0("hidden")
        get_logger("serve").info("also hidden")
        get_logger("serve").warning("a warning still shows")
    finally:
        set_quiet(False)
        get_logger().removeHandler(keep)
    assert seen == ["step 3", "a warning still shows"]
    out = capsys.readouterr()
    assert "step 3" in out.out and "hidden" not in out.out
    assert "a warning still shows" in out.err
