"""LAMBADA- and TriviaQA-style evaluation: readers of both formats, prompts, scoring, the verb."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import assert_clean_error, run_lmforge_inprocess
from test_data_helpers import write_jsonl
from test_fewshot_cli import make_prompting_run

from lmforge.common import LmforgeError
from lmforge.prompting import cloze as C
from lmforge.prompting.builder import PromptBuilder
from lmforge.prompting.cloze_data import (
    ClozeItem,
    ClozeSet,
    load_cloze_set,
    mention_distance,
    read_lambada,
    read_trivia,
    split_pool,
)

cli = run_lmforge_inprocess

PASSAGES = [
    "Anna met Bob at the bridge. It rained. Before going home, Anna said goodbye to Bob",
    "Carl bought a kettle. Carl was happy with the kettle",
    "Dora saw the sea! Then she walked home and ate soup",
]


def _trivia_entry(q: str, value: str, aliases: list[str]) -> dict:
    return {"Question": q, "QuestionId": q[:8], "Answer": {"Value": value, "Aliases": aliases,
            "NormalizedAliases": [a.lower() for a in aliases]}}  # fmt: skip


# ---------------------------------------------------------------------------
# Readers


def test_lambada_reader_reads_jsonl_and_plain_text(tmp_path):
    js = write_jsonl(tmp_path / "l.jsonl", [{"text": t} for t in PASSAGES])
    txt = tmp_path / "l.txt"
    txt.write_text("\n".join(PASSAGES) + "\n\n", encoding="utf-8")
    for items in (read_lambada(js), read_lambada(txt)):
        assert [x.answer for x in items] == ["Bob", "kettle", "soup"]
        assert items[0].fields["context"] == PASSAGES[0].rsplit(" ", 1)[0]
        # Distance: sentence ends after the last mention (2: the clue, then "It rained.").
        assert [x.distance for x in items] == [2, 1, None]
    assert read_lambada(js)[1].where == f"{js}:2"
    assert mention_distance("Bob came. Then Bob left. We met", "Bob") == (1, 3)


@pytest.mark.parametrize(
    "lines, needle",
    [
        (['{"text": "a b"}', "{not json"], "l.jsonl:2"),
        (['{"txt": "a b"}'], 'l.jsonl:1: no "text"'),
        (['{"text": "lonely"}'], "l.jsonl:1: a LAMBADA passage needs"),
        (['{"text": 7}'], 'l.jsonl:1: "text" must be'),
        (['{"text": "see the cat", "answer": "dog"}'], "passage's last word is 'cat'"),
    ],
)
def test_lambada_reader_names_the_bad_line(tmp_path, lines, needle):
    p = tmp_path / "l.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(LmforgeError, match=needle.replace("(", r"\(").replace(".", r"\.")):
        read_lambada(p)


def test_trivia_reader_reads_json_jsonl_and_hf_keys(tmp_path):
    entries = [_trivia_entry("Who wrote Hamlet?", "Shakespeare", ["Shakespeare", "The Bard"]),
               _trivia_entry("Capital of France?", "Paris", ["Paris"])]  # fmt: skip
    js = tmp_path / "t.json"
    js.write_text(json.dumps({"Data": entries, "Version": 1.0}), encoding="utf-8")
    jl = write_jsonl(tmp_path / "t.jsonl", entries)
    hf = write_jsonl(
        tmp_path / "hf.jsonl",
        [{"question": "Capital of France?", "answer": {"value": "Paris", "aliases": ["paris"],
          "normalized_aliases": ["paris"]}}],
    )  # fmt: skip
    for items in (read_trivia(js), read_trivia(jl)):
        assert [x.answer for x in items] == ["Shakespeare", "Paris"]
        assert items[0].aliases == ("Shakespeare", "The Bard", "shakespeare", "the bard")
        assert items[0].fields == {"question": "Who wrote Hamlet?"}
    assert read_trivia(js)[1].where == f"{js}: Data[1]"
    assert read_trivia(hf)[0].aliases == ("Paris", "paris")


def test_trivia_reader_errors(tmp_path):
    p = tmp_path / "t.json"
    p.write_text(json.dumps({"Data": [_trivia_entry("Q?", "A", ["A"]), {"Question": "Q2?"}]}))
    with pytest.raises(LmforgeError, match=r"Data\[1\]: no \"Answer\".*dev or verified"):
        read_trivia(p)
    p.write_text('{"Data": [1, 2')
    with pytest.raises(LmforgeError, match="t.json:1: malformed JSON"):
        read_trivia(p)
    bad = write_jsonl(tmp_path / "b.jsonl", [{"Question": "Q?", "Answer": {"Value": "A",
                      "Aliases": "A"}}])  # fmt: skip
    with pytest.raises(LmforgeError, match=r"b.jsonl:1: \"Answer.Aliases\" must be a list"):
        read_trivia(bad)


def test_without_a_train_file_the_demo_pool_is_never_scored(tmp_path):
    rows = [{"text": f"Item {i} is called Name{i}. We saw Name{i}"} for i in range(30)]
    p = write_jsonl(tmp_path / "l.jsonl", rows)
    cset = load_cloze_set("lambada", test=p, demo_pool=8)
    assert len(cset.train) == 8 and len(cset.test) == 22
    assert not {x.where for x in cset.train} & {x.where for x in cset.test}
    assert "never scored" in cset.train_source
    pool, rest = split_pool(read_lambada(p), 100)  # at most half of the file
    assert len(pool) == 15 and len(rest) == 15
    with pytest.raises(LmforgeError, match="--world DIR"):
        load_cloze_set("trivia")


# ---------------------------------------------------------------------------
# Scoring rules and prompts


def test_what_counts_as_right():
    assert C.first_word(" Bob, who was there") == "Bob" and C.first_word(" ...") == ""
    assert C.first_word(" O'Brien's hat") == "O'Brien's"
    assert C.same_word("Bob.", "bob") and not C.same_word("", "") and not C.same_word("Bo", "Bob")
    aliases = ["Harlow", "the city of Harlow"]
    assert C.exact_match("The city of Harlow.", aliases) and not C.exact_match("Harlowe", aliases)
    assert C.contains_alias("I think harlow, yes", aliases)
    assert not C.contains_alias("Harlowe", aliases) and not C.exact_match("", aliases)


def test_no_model_baselines():
    ctx = "Anna met Bob. Carl was there. Later Anna said goodbye to"
    item = ClozeItem({"context": ctx}, "Bob", ("Bob",), "x:1", "person", 2)
    other = ClozeItem(
        {"context": "Anna met Bob. Then she waved to"}, "Bob", ("Bob",), "x:2", "person"
    )
    cset = ClozeSet(
        "lambada", "lambada", [item], [item, other], {"person": ["Anna", "Bob", "Carl"]}
    )
    assert C.recency_guess(item, cset.candidates["person"]) == "Anna"  # the last one named
    assert C.recency_guess(other, ["Carl"]) is None
    assert C.baselines(cset) == {"chance": pytest.approx(1 / 3), "recency": 0.5}
    assert C.baselines(ClozeSet("t", "trivia", [], [item])) == {}


def test_prompts_go_through_the_builder(made):
    cset = load_cloze_set("trivia", world=made["world"])
    from lmforge.runs import load_run

    tok = load_run(made["run"], need="decoder").tokenizer
    task = C.answer_task(cset, C.FORMATS["trivia"][0])
    b = PromptBuilder(task, tok)  # type: ignore[arg-type]
    demos = [C._example(x) for x in cset.train[:2]]
    p = b.build(demos, task.test[0])
    d0, d1, q = cset.train[0], cset.train[1], cset.test[0]
    assert p.text == (
        f"Q: {d0.fields['question']}\nA: {d0.answer}\n\nQ: {d1.fields['question']}\n"
        f"A: {d1.answer}\n\nQ: {q.fields['question']}\nA:"
    )
    assert p.ids[0] == tok.eos_id and p.ids[1:] == tok.encode(p.text)
    lam = load_cloze_set("lambada", world=made["world"])
    blank = C.answer_task(lam, C.FORMATS["lambada"][1])
    x = lam.train[0]
    assert blank.demo_text(C._example(x)) == f"{x.fields['context']} ____. -> {x.answer}"


# ---------------------------------------------------------------------------
# Evaluation


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    return make_prompting_run(tmp_path_factory.mktemp("cloze"))


@pytest.fixture(scope="module")
def opened(made):
    from lmforge.runs import load_run

    return load_run(made["run"], need="decoder")


def test_accuracy_by_k_distance_and_kind(made, opened, monkeypatch):
    """An oracle continuation scores 100 %, a wrong one 0 %, grouped as the set says."""
    lam = load_cloze_set("lambada", world=made["world"])
    answers = {x.fields["context"]: x.answer for x in lam.test}
    calls = []

    def oracle(model, tok, prompt_ids, max_new_tokens, batch_size):
        calls.append(len(prompt_ids))
        texts = [tok.decode(ids) for ids in prompt_ids]
        return [next(f" {a}. And" for c, a in answers.items() if t.endswith(c)) for t in texts]

    monkeypatch.setattr(C, "generate", oracle)
    cfg = C.ClozeConfig(k=[0, 2], seeds=2, limit=6, choices=False)
    res = C.run_cloze(opened.model, opened.tokenizer, lam, cfg, show_progress=False)
    assert [(e.k, e.seed) for e in res.evals] == [(0, 0), (2, 0), (2, 1)] and calls == [6] * 3
    rows = res.summary()
    assert [r["k"] for r in rows] == [0, 2] and rows[1]["seeds"] == 2
    assert rows[0]["accuracy"]["mean"] == 1.0 and "choice accuracy" not in rows[0]
    by = rows[1]["accuracy by distance"]
    assert set(by) <= {str(d) for d in range(1, 7)} and all(s["mean"] == 1.0 for s in by.values())
    assert sum(len(v) for v in res.groups("kind").values()) == 6
    assert "| 0 | 1 |" in res.to_markdown() and "accuracy by distance" in res.to_markdown()
    monkeypatch.setattr(C, "generate", lambda m, t, ids, n, b: [" nobody"] * len(ids))
    res = C.run_cloze(opened.model, opened.tokenizer, lam, cfg, show_progress=False)
    assert all(r["accuracy"]["mean"] == 0.0 for r in res.summary())


def test_trivia_exact_match_and_contains(made, opened, monkeypatch):
    tri = load_cloze_set("trivia", world=made["world"])
    by_q = {x.fields["question"]: x for x in tri.test}

    def reply(model, tok, prompt_ids, n, b):
        out = []
        for ids in prompt_ids:
            q = tok.decode(ids).rsplit("Q: ", 1)[1].removesuffix("\nA:")
            out.append(f" I guess {by_q[q].aliases[-1]}\nQ: next")
        return out

    monkeypatch.setattr(C, "generate", reply)
    res = C.run_cloze(
        opened.model, opened.tokenizer, tri, C.ClozeConfig(k=[1], seeds=1), show_progress=False
    )
    (row,) = res.summary()
    assert row["contains"]["mean"] == 1.0 and row["exact match"]["mean"] == 0.0
    assert res.evals[0].results[0].response.startswith(" I guess")


def test_candidate_choice_is_the_argmax_of_a_plain_forward(made, opened):
    """The shared-prefix choice scoring picks what a cache-free forward of each candidate picks."""
    lam = load_cloze_set("lambada", world=made["world"])
    lam.test = lam.test[:5]
    fmt = C.FORMATS["lambada"][0]
    task = C.answer_task(lam, fmt)
    tok, model = opened.tokenizer, opened.model
    prompts = PromptBuilder(task, tok).build_many([C._example(lam.train[0])], task.test)
    picks, gold = C._choices(model, tok, lam, prompts, fmt, batch_size=4)
    for p, item, pick, g in zip(prompts, lam.test, picks, gold):
        best, best_lp, lps = None, -1e9, {}
        for w in lam.candidates[item.kind]:
            c = tok.encode(" " + w)
            ids = torch.tensor([p.ids + c])
            with torch.no_grad():
                logp = torch.log_softmax(model(ids)[0][0].double(), -1)
            lps[w] = sum(logp[len(p.ids) - 1 + t, c[t]].item() for t in range(len(c)))
            if lps[w] > best_lp:
                best, best_lp = w, lps[w]
        assert pick == best
        assert g == pytest.approx(lps[item.answer], abs=1e-4)
    # Without candidates the answer's log-prob comes from a forward of prompt + answer.
    again = C._answer_logprobs(model, tok, lam, prompts, fmt, 4, [None] * len(prompts))
    assert again == pytest.approx(gold, abs=1e-4)


def test_prompts_that_leave_no_room_for_the_answer_are_refused_before_any_forward(opened):
    tok = opened.tokenizer
    long = "Wolfeschlegelsteinhausenbergerdorff"
    item = ClozeItem({"context": "We met"}, long, (long,), "f.jsonl:1", "person")
    cset = ClozeSet("lambada", "lambada", [item, item], [item], {"person": [long, "Al"]})
    cfg = C.ClozeConfig(k=[0], max_new_tokens=2)
    prompt = 1 + len(tok.encode("We met"))  # the start token, then the context
    room = C.answer_room(tok, cset, C.FORMATS["lambada"][0], cfg)
    assert room == [len(tok.encode(" " + long))] and room[0] > 2
    C.check_prompts(prompt + room[0], tok, cset, cfg)  # just fits
    with pytest.raises(LmforgeError, match=r"f.jsonl:1: the 0-shot prompt .* context of"):
        C.check_prompts(prompt + room[0] - 1, tok, cset, cfg)


def test_real_model_generation_runs_end_to_end(made, opened):
    lam = load_cloze_set("lambada", world=made["world"])
    cfg = C.ClozeConfig(k=[0, 1], seeds=1, limit=4, max_new_tokens=3)
    res = C.run_cloze(opened.model, opened.tokenizer, lam, cfg, show_progress=False)
    assert len(res.evals) == 2 and all(len(e.results) == 4 for e in res.evals)
    assert all(
        r.choice in lam.candidates[x.kind] for x, r in zip(res.set.test, res.evals[0].results)
    )
    assert {n for _, n in res.metrics()} == {"accuracy", "choice accuracy", C.LOGPROB}
    lp = res.summary()[0][C.LOGPROB]["mean"]
    assert lp < 0 and f"{lp:.2f}" in res.to_markdown()
    g = res.paired_gain("answer_logprob", 1)
    assert g["n"] == 4 and g["gain"] == pytest.approx(g["few"] - g["zero"]) and g["se"] >= 0
    assert res.paired_gain("correct", 4) is None  # no k=4 draw


# ---------------------------------------------------------------------------
# The verb


def cloze(made, *args):
    return cli("eval", "cloze", "--run", made["run"], *args)


def test_verb_prints_tables_and_writes_the_folder(made, tmp_path):
    out = tmp_path / "out"
    r = cloze(made, "--world", made["world"], "--k", "0", "1", "--seeds", "1", "--limit", "4",
              "--max-new-tokens", "3", "--out", out, "--quiet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "## lambada" in r.stdout and "## trivia" in r.stdout and "| exact match |" in r.stdout
    names = sorted(p.name for p in out.iterdir())
    assert names == ["lambada.png", "predictions.jsonl", "results.json", "results.md", "trivia.png"]
    doc = json.loads((out / "results.json").read_text())
    assert doc["kind"] == "lmforge eval cloze" and set(doc["tasks"]) == {"lambada", "trivia"}
    assert [row["k"] for row in doc["tasks"]["lambada"]["summary"]] == [0, 1]
    preds = [json.loads(x) for x in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == 2 * 2 * 4 and {"choice", "distance"} <= set(preds[0])
    again = cloze(made, "--world", made["world"], "--limit", "2", "--out", out)
    assert_clean_error(again, "already holds a cloze evaluation", "--force")


def test_verb_reads_real_format_files(made, tmp_path):
    lam = write_jsonl(tmp_path / "lambada_test.jsonl", [{"text": t} for t in PASSAGES * 4])
    r = cloze(made, "--lambada", lam, "--k", "0", "1", "--seeds", "1", "--max-new-tokens", "2",
              "--quiet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "## lambada" in r.stdout and "## trivia" not in r.stdout
    assert "choice accuracy" not in r.stdout  # a real LAMBADA file has no candidate words


def test_verb_bad_input_is_one_line(made, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a b"}\n{oops\n', encoding="utf-8")
    assert_clean_error(cloze(made, "--lambada", bad), "bad.jsonl:2", "malformed")
    assert_clean_error(cloze(made, "--trivia", tmp_path / "missing.json"), "missing.json")
    assert_clean_error(
        cloze(made, "--world", made["world"], "--k", "1000"), "k=1000", "larger than"
    )
    assert_clean_error(cloze(made, "--lambada-train", bad), "--lambada-train needs --lambada")
    assert_clean_error(cloze(made, "--world", tmp_path), "long_range", "lmforge world")
    assert_clean_error(cloze(made, "--world", made["world"], "--tasks", "squad"), "squad")
