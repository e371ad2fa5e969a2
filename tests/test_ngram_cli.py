"""`lmforge ngram ...` end to end, and its error contract (one line, exit 2, nothing damaged)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import assert_clean_error, run_lmforge

CORPUS = """The cat sat on the mat.
The cat ate the fish.
The dog sat on the log.
A dog ate a bone.
The cat saw the dog.
The dog saw a cat on the mat.
"""


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    d = tmp_path_factory.mktemp("ngram_cli")
    (d / "corpus.txt").write_text(CORPUS * 3, encoding="utf-8")
    (d / "test.txt").write_text(
        "The cat sat on the log.\nA zebra ate the fish.\n", encoding="utf-8"
    )
    r = run_lmforge(
        "ngram", "train", "--order", "3", "--smoothing", "kn",
        "--input", d / "corpus.txt", "--out", d / "m.npz",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "wrote" in r.stdout and "3-grams" in r.stdout
    r = run_lmforge(
        "ngram", "export", "--model", d / "m.npz", "--format", "arpa", "--out", d / "m.arpa"
    )
    assert r.returncode == 0, r.stderr
    assert (d / "m.arpa").read_text(encoding="utf-8").count("\\end\\") == 1
    return d


def test_eval_prints_perplexity(workdir):
    r = run_lmforge("ngram", "eval", "--model", workdir / "m.npz", "--input", workdir / "test.txt")
    assert r.returncode == 0, r.stderr
    assert "tokens      15 (13 words + 2 </s>)" in r.stdout
    assert "OOV         1 " in r.stdout
    ppl = float(r.stdout.split("perplexity")[1].split()[0].replace(",", ""))
    assert 1.0 < ppl < 200.0


def test_eval_verbose_breakdown_and_underflow(workdir, tmp_path):
    long = tmp_path / "long.txt"
    long.write_text(CORPUS * 40, encoding="utf-8")
    r = run_lmforge("ngram", "eval", "--model", workdir / "m.npz", "--input", long, "--verbose")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["sent", "token", "p", "log10", "p", "order"]
    assert lines[1].split()[1] == "the" and lines[1].endswith("-gram")
    assert any("underflowed to 0 at token" in ln for ln in lines)


def test_info_suggest_sample(workdir):
    r = run_lmforge("ngram", "info", "--model", workdir / "m.npz")
    assert r.returncode == 0 and "smoothing   kn" in r.stdout and "D1" in r.stdout
    r = run_lmforge(
        "ngram", "suggest", "--model", workdir / "m.npz", "--k", "2", input="the ca\nthe cat \n"
    )
    assert r.returncode == 0, r.stderr
    first, second = r.stdout.splitlines()
    assert first.startswith("the ca_ | cat ")
    assert second.split(" | ")[1].split()[0] in {"sat", "ate", "saw"}
    r = run_lmforge("ngram", "sample", "--model", workdir / "m.npz", "--n", "3", "--seed", "5")
    assert r.returncode == 0 and len(r.stdout.splitlines()) == 3
    again = run_lmforge("ngram", "sample", "--model", workdir / "m.npz", "--n", "3", "--seed", "5")
    assert again.stdout == r.stdout


def test_arpa_file_is_a_first_class_model(workdir):
    outs = []
    for name in ("m.npz", "m.arpa"):
        r = run_lmforge("ngram", "eval", "--model", workdir / name, "--input", workdir / "test.txt")
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout.split("perplexity")[1].split()[0])
    assert outs[0] == outs[1]  # same tokenizer (kept in the ARPA header), same scores
    r = run_lmforge("ngram", "suggest", "--model", workdir / "m.arpa", input="the d\n")
    assert r.returncode == 0 and r.stdout.startswith("the d_ | dog ")
    r = run_lmforge(
        "ngram", "sample", "--model", workdir / "m.arpa", "--n", "1", "--temperature", "0"
    )
    assert r.returncode == 0 and r.stdout.strip()


def test_train_can_write_arpa_and_use_pruning(workdir, tmp_path):
    out = tmp_path / "p.arpa"
    r = run_lmforge(
        "ngram", "train", "--order", "3", "--prune", "0", "1", "1", "--smoothing", "mkn",
        "--input", workdir / "corpus.txt", "--out", out,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = run_lmforge("ngram", "info", "--model", out)
    assert r.returncode == 0 and "order       3" in r.stdout


# ---------------------------------------------------------------------------
# bad input: one line, exit 2


@pytest.mark.parametrize("order", ["0", "7"])
def test_order_out_of_range_names_the_field(workdir, tmp_path, order):
    out = tmp_path / "m.npz"
    out.write_text("precious", encoding="utf-8")
    r = run_lmforge(
        "ngram", "train", "--order", order, "--input", workdir / "corpus.txt", "--out", out
    )
    assert_clean_error(r, "order")
    assert out.read_text(encoding="utf-8") == "precious"  # nothing damaged


def test_empty_corpus(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("", encoding="utf-8")
    r = run_lmforge("ngram", "train", "--input", empty, "--out", tmp_path / "m.npz")
    assert_clean_error(r, "empty.txt", "empty")
    blank = tmp_path / "blank.txt"
    blank.write_text("\n   \n\n", encoding="utf-8")
    r = run_lmforge("ngram", "train", "--input", blank, "--out", tmp_path / "m.npz")
    assert_clean_error(r, "blank.txt", "no sentences")
    assert not (tmp_path / "m.npz").exists()


def test_malformed_arpa_names_the_line(workdir, tmp_path):
    lines = (workdir / "m.arpa").read_text(encoding="utf-8").split("\n")
    i = lines.index("\\2-grams:") + 3
    lines[i] = "-0.5\tthe"  # wrong number of fields for a 2-gram
    bad = tmp_path / "bad.arpa"
    bad.write_text("\n".join(lines), encoding="utf-8")
    r = run_lmforge("ngram", "eval", "--model", bad, "--input", workdir / "test.txt")
    assert_clean_error(r, f"bad.arpa:{i + 1}:", "2 word(s)")


@pytest.mark.slow  # one of the longest default tests (kept under 15 min); CI runs it in test-slow
def test_a_file_that_is_not_a_model(workdir, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("just some notes\n", encoding="utf-8")
    assert_clean_error(
        run_lmforge("ngram", "info", "--model", text), "notes.txt", "not an n-gram model"
    )
    blob = tmp_path / "weights.npz"
    np.savez(blob, x=np.arange(3))
    assert_clean_error(
        run_lmforge("ngram", "info", "--model", blob), "weights.npz", "not an lmforge n-gram model"
    )
    broken = tmp_path / "broken.npz"
    broken.write_bytes(b"PK\x03\x04" + b"\x00" * 64)
    assert_clean_error(run_lmforge("ngram", "info", "--model", broken), "broken.npz")
    assert_clean_error(
        run_lmforge("ngram", "info", "--model", tmp_path / "missing.npz"), "missing.npz"
    )


@pytest.mark.slow  # one of the longest default tests (kept under 15 min); CI runs it in test-slow
def test_bad_flags_name_their_field(workdir, tmp_path):
    corpus = workdir / "corpus.txt"
    r = run_lmforge(
        "ngram", "train", "--smoothing", "witten", "--input", corpus, "--out", tmp_path / "m"
    )
    assert_clean_error(r, "smoothing", "mkn")
    r = run_lmforge(
        "ngram", "train", "--prune", "1", "1", "--input", corpus, "--out", tmp_path / "m"
    )
    assert_clean_error(r, "prune", "first threshold must be 0")
    r = run_lmforge(
        "ngram", "train", "--prune", "0", "2", "1", "--input", corpus, "--out", tmp_path / "m"
    )
    assert_clean_error(r, "prune", "non-decreasing")
    r = run_lmforge("ngram", "sample", "--model", workdir / "m.npz", "--temperature", "-1")
    assert_clean_error(r, "temperature")
    r = run_lmforge("ngram", "suggest", "--model", workdir / "m.npz", "--k", "0")
    assert_clean_error(r, "k")
