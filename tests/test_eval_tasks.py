"""Task evaluation (`lmforge.eval.tasks`, `lmforge eval tasks`).

Exact accuracies come from a scripted decoder: a small torch module that follows
the engine's forward contract and, after each known prompt, puts all its
probability on the next token of a reply chosen by the test. So which records
are right is known in advance, and every count, group and interval can be
checked exactly. The batched path and the CLI run a real (random) tiny LLaMA.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import assert_clean_error, run_lmforge_inprocess
from test_data_helpers import make_bpe_tokenizer

from lmforge.common import LmforgeError
from lmforge.eval.tasks import (
    TaskEvalConfig,
    TaskEvalResult,
    build_prompt,
    evaluate_tasks,
    plain_prompt_text,
)
from lmforge.eval.tasks_data import TaskRecord, load_task_files, parse_data_spec
from lmforge.eval.tasks_report import (
    compare_results,
    paired_table,
    plot_comparison,
    write_task_eval,
)
from lmforge.eval.tasks_stats import Accuracy, PairedChange, paired_changes, wilson_interval


def _rec(pid, task, difficulty, question, answer, answer_type="number", cot=False, **extra):
    return {
        "messages": [
            {"role": "user", "content": question},
            {"role": "assistant", "content": f"reference {answer}"},
        ],
        "task": task,
        "subtask": task,
        "template": f"{task}/t1",
        "problem_id": pid,
        "difficulty": difficulty,
        "cot": cot,
        "answer": answer,
        "answer_type": answer_type,
        **extra,
    }


# (record, the reply the scripted model gives, is that reply right)
CASES = [
    (_rec("a1", "arithmetic", 1, "What is 2 plus 3?", "5"), "5", True),
    (_rec("a2", "arithmetic", 2, "What is 12 plus 30?", "42"), "41", False),
    (_rec("a3", "arithmetic", 2, "What is 7 plus 7?", "14"), "The answer is 14", True),
    (
        _rec("s1", "sentiment", 1, "The film was lovely. Positive or negative?", "positive",
             "choice", choices=["negative", "positive"]),
        "positive", True,
    ),
    (
        _rec("s2", "sentiment", 3, "The soup was cold. Positive or negative?", "negative",
             "choice", choices=["negative", "positive"]),
        "positive or negative", False,  # names both options: a hedge earns nothing
    ),
    (_rec("o1", "sorting", 2, "Sort: 3, 1, 2", "1, 2, 3", "sequence"), "Sorted: 1, 2, 3", True),
    # Chain of thought: only the final answer counts, not numbers on the way.
    (
        _rec("w1", "word_problem", 3, "Ann has 2 pens and gets 3 more. How many?\n"
             "Let's think step by step.", "5", cot=True),
        "Ann starts with 2.\nShe gets 3: 2 + 3 = 5.\nAnswer: 5", True,
    ),
    (
        _rec("w2", "word_problem", 3, "Bo has 4 cups and loses 1. How many?\n"
             "Let's think step by step.", "3", cot=True),
        "Bo has 3 after one... no: 4 + 1 = 5.\nAnswer: 5", False,
    ),
]  # fmt: skip


@pytest.fixture(scope="module")
def tok(tmp_path_factory):
    texts = [r["messages"][0]["content"] + " " + reply for r, reply, _ in CASES]
    return make_bpe_tokenizer(tmp_path_factory.mktemp("tok"), 360, texts * 8)


class ScriptedLM(torch.nn.Module):
    """A decoder whose next token is the next token of the reply scripted for its prompt.

    `forward(ids, kv_cache=None) -> (logits, None)` as the engine calls it; without
    `new_kv_cache` the engine re-reads the whole sequence every step, so each row
    is the prompt followed by what was generated so far. An unknown sequence, or a
    finished reply, gets the end-of-turn token.
    """

    def __init__(self, vocab_size: int, scripts: dict[tuple[int, ...], list[int]], end: int):
        super().__init__()
        self.vocab_size, self.scripts, self.end = vocab_size, scripts, end
        self.anchor = torch.nn.Parameter(torch.zeros(()))  # the engine asks for a device
        self.calls = 0

    def _next(self, row: list[int]) -> int:
        for prompt in sorted(self.scripts, key=len, reverse=True):
            n = len(prompt)
            if tuple(row[:n]) == prompt:
                reply, done = self.scripts[prompt], row[n:]
                if done == reply[: len(done)] and len(done) < len(reply):
                    return reply[len(done)]
                return self.end
        return self.end

    def forward(self, ids, targets=None, kv_cache=None):
        self.calls += 1
        B, T = ids.shape
        logits = torch.full((B, T, self.vocab_size), -30.0)  # (B, T, V)
        for b in range(B):
            logits[b, -1, self._next(ids[b].tolist())] = 30.0
        return logits, None


def scripted_model(tok, records, replies, template=True):
    scripts = {}
    for rec, reply in zip(records, replies):
        msgs = [m for m in rec["messages"] if m["role"] != "assistant"]
        scripts[tuple(build_prompt(tok, msgs, template))] = tok.encode(reply)
    return ScriptedLM(tok.vocab_size, scripts, tok.special_id("end"))


def _write(path: Path, records) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------
# Statistics


def test_wilson_interval_matches_known_values():
    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    lo, hi = wilson_interval(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-4)
    lo, hi = wilson_interval(10, 10)
    assert hi == 1.0 and lo == pytest.approx(0.7225, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert Accuracy(31, 50).cell() == "62.0% (31/50) [48.2, 74.1]"


# ---------------------------------------------------------------------------
# The library on a scripted model: exact accuracies


def test_exact_accuracy_by_family_difficulty_and_mode(tok):
    records = [r for r, _, _ in CASES]
    model = scripted_model(tok, records, [reply for _, reply, _ in CASES])
    result = evaluate_tasks(model, tok, records, TaskEvalConfig(batch_size=3))

    assert [p.correct for p in result.predictions] == [ok for _, _, ok in CASES]
    assert [p.response for p in result.predictions] == [reply for _, reply, _ in CASES]
    assert result.overall == Accuracy(5, 8)
    g = result.groups
    assert g["task"] == {
        "arithmetic": Accuracy(2, 3),
        "sentiment": Accuracy(1, 2),
        "sorting": Accuracy(1, 1),
        "word_problem": Accuracy(1, 2),
    }
    assert g["difficulty"] == {"1": Accuracy(2, 2), "2": Accuracy(2, 3), "3": Accuracy(1, 3)}
    assert list(g["difficulty"]) == ["1", "2", "3"]
    assert g["mode"] == {"direct": Accuracy(4, 6), "cot": Accuracy(1, 2)}
    assert g["split"] == {"seen": Accuracy(5, 8)}

    by_id = {p.meta["problem_id"]: p for p in result.predictions}
    assert by_id["a3"].extracted == "14" and by_id["s2"].extracted is None
    assert by_id["w2"].extracted == "5" and not by_id["w2"].correct  # 3 was never the final
    assert by_id["o1"].extracted == "1, 2, 3"
    p = by_id["a1"]
    assert p.prompt == "<|user|>What is 2 plus 3?<|end|><|assistant|>"
    assert p.finish_reason == "stop" and p.new_tokens == len(tok.encode("5"))
    assert p.meta["template"] == "arithmetic/t1" and "messages" not in p.meta

    d = result.to_dict()
    assert d["accuracy"]["overall"]["all"]["correct"] == 5
    assert d["accuracy"]["overall"]["all"]["ci95"] == pytest.approx(list(wilson_interval(5, 8)))
    again = TaskEvalResult.from_dict(d, [p.to_dict() for p in result.predictions])
    assert again.groups == result.groups


def test_seen_heldout_templates_and_heldout_tasks_come_from_files(tok, tmp_path):
    seen = [r for r, _, _ in CASES[:4]]
    held = [dict(r, template=r["task"] + "/h1") for r, _, _ in CASES[4:7]]
    held_task = [dict(CASES[7][0], heldout_task=True)]
    f_seen = _write(tmp_path / "test.jsonl", seen)
    f_held = _write(tmp_path / "heldout_templates.jsonl", held)
    f_other = _write(tmp_path / "more.jsonl", held_task)
    records = load_task_files([f_seen, f_held, f"{f_other}=seen"])
    assert [r.split for r in records] == ["seen"] * 4 + ["heldout_templates"] * 3 + ["seen"]
    assert records[4].where == f"{f_held}:1"

    all_records = seen + held + held_task
    model = scripted_model(tok, all_records, [reply for _, reply, _ in CASES])
    result = evaluate_tasks(model, tok, records)
    assert result.groups["split"] == {
        "seen": Accuracy(3, 4),
        "heldout_templates": Accuracy(2, 3),
        "heldout_task": Accuracy(0, 1),
    }
    assert [p.where for p in result.predictions][:2] == [f"{f_seen}:1", f"{f_seen}:2"]

    # limit: the first N records of each file
    limited = evaluate_tasks(model, tok, records, TaskEvalConfig(limit=2))
    assert [p.where for p in limited.predictions] == [
        f"{f_seen}:1", f"{f_seen}:2", f"{f_held}:1", f"{f_held}:2", f"{f_other}:1",
    ]  # fmt: skip


def test_plain_prompts_for_a_base_model(tok):
    """No role tokens: a new document (EOS), the question, a newline; a direct answer ends
    at the newline, a worked solution at the blank line that ends its document."""
    direct, cot = CASES[0][0], CASES[6][0]
    replies = ["5\nWhat is 3 plus 3?\n6", "Ann starts with 2.\n2 + 3 = 5.\nAnswer: 5\n\nAnn has 9."]
    model = scripted_model(tok, [direct, cot], replies, template=False)
    result = evaluate_tasks(model, tok, [direct, cot], TaskEvalConfig(template=False))
    a, b = result.predictions
    assert a.prompt == "<|eos|>" + plain_prompt_text(direct["messages"][:1])
    assert a.prompt == "<|eos|>What is 2 plus 3?\n"
    assert a.response == "5" and a.correct and a.finish_reason == "stop"
    assert a.new_tokens < len(tok.encode(replies[0]))  # stopped at the newline
    assert b.response == "Ann starts with 2.\n2 + 3 = 5.\nAnswer: 5" and b.correct
    assert result.overall == Accuracy(2, 2)


def test_too_long_prompts_are_wrong_skipped_or_refused(tok):
    records = [r for r, _, _ in CASES[:3]]
    model = scripted_model(tok, records, [reply for _, reply, _ in CASES[:3]])
    lengths = [len(build_prompt(tok, r["messages"][:1], True)) for r in records]
    model.max_seq_len = sorted(lengths)[1] + 1  # the longest prompt does not fit
    longest = lengths.index(max(lengths))
    wrong = evaluate_tasks(model, tok, records)
    assert wrong.overall.n == 3 and wrong.too_long == 1
    assert wrong.predictions[longest].finish_reason == "prompt_too_long"
    assert not wrong.predictions[longest].correct
    skip = evaluate_tasks(model, tok, records, TaskEvalConfig(too_long="skip"))
    assert skip.overall.n == 2 and skip.skipped == 1
    with pytest.raises(LmforgeError, match=r"record \d: prompt is \d+ tokens"):
        evaluate_tasks(model, tok, records, TaskEvalConfig(too_long="error"))


def test_records_are_checked_with_their_location(tok, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(CASES[0][0]) + "\n{not json\n", encoding="utf-8")
    with pytest.raises(LmforgeError, match=rf"{bad}:2: malformed JSON"):
        load_task_files([bad])
    no_answer = {k: v for k, v in CASES[0][0].items() if k != "answer"}
    f = _write(tmp_path / "noanswer.jsonl", [CASES[1][0], no_answer])
    with pytest.raises(LmforgeError, match=rf"{f}:2: record has no 'answer'"):
        load_task_files([f])
    f = _write(tmp_path / "checker.jsonl", [dict(CASES[0][0], checker="nope")])
    with pytest.raises(LmforgeError, match=rf"{f}:1: checker 'nope' is unknown"):
        load_task_files([f], checkers=["world"])
    with pytest.raises(LmforgeError, match="record 1: checker 'nope'"):
        evaluate_tasks(scripted_model(tok, [], []), tok, [dict(CASES[0][0], checker="nope")])
    assert parse_data_spec("x/heldout_templates.jsonl") == (Path("x/heldout_templates.jsonl"),
                                                            "heldout_templates")  # fmt: skip
    assert parse_data_spec("a.jsonl=heldout_templates")[1] == "heldout_templates"
    assert parse_data_spec("w/instructions/heldout_tasks.jsonl")[1] == "heldout_task"
    assert parse_data_spec("w/instructions/test.jsonl")[1] == "seen"
    assert TaskRecord(CASES[0][0]).prompt_messages() == CASES[0][0]["messages"][:1]


def test_a_record_can_name_its_checker(tok, monkeypatch):
    import lmforge.eval.tasks as tasks

    monkeypatch.setattr(tasks, "CHECKERS", dict(tasks.CHECKERS))
    tasks.register_checker(
        "exact", lambda rec, response: float(response.strip() == rec["answer"]),
        lambda rec, response: response.strip(),
    )  # fmt: skip
    records = [dict(CASES[0][0], checker="exact"), dict(CASES[2][0], checker="exact")]
    model = scripted_model(tok, records, ["5", "The answer is 14"])
    result = evaluate_tasks(model, tok, records)
    assert [p.correct for p in result.predictions] == [True, False]  # the world's says True
    assert result.predictions[1].extracted == "The answer is 14"


def test_compare_results_puts_models_side_by_side(tok, tmp_path):
    records = [r for r, _, _ in CASES]
    good = scripted_model(tok, records, [r["answer"] for r in records])
    mixed = scripted_model(tok, records, [reply for _, reply, _ in CASES])
    r_good = evaluate_tasks(good, tok, records)
    r_mixed = evaluate_tasks(mixed, tok, records)
    assert r_good.overall == Accuracy(8, 8)
    table = compare_results({"base": r_mixed, "sft": r_good})
    assert table.models == ("base", "sft")
    assert (table.rows[0].group, table.rows[0].cells) == (
        "overall",
        (Accuracy(5, 8), Accuracy(8, 8)),
    )
    md = table.to_markdown().splitlines()
    assert md[0] == "| group | base | sft |"
    assert md[2].startswith("| **overall** | 62.5% (5/8)")
    assert any(line.startswith("| task family: sorting |") for line in md)
    assert any(line.startswith("| answer mode: chain of thought |") for line in md)
    png = plot_comparison({"base": r_mixed, "sft": r_good}, tmp_path / "cmp.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_paired_changes_count_discordant_records_by_key():
    labels = {"overall": "all", "task": "t", "difficulty": "1", "split": "seen", "mode": "direct"}
    base = [("a", labels, True), ("b", labels, False), ("c", labels, False), ("d", labels, True)]
    other = [("a", labels, False), ("b", labels, True), ("c", labels, True), ("e", labels, True)]
    change = paired_changes(base, other)["overall"]["all"]
    # "d" and "e" are not in both; "b", "c" gained, "a" lost.
    assert change == PairedChange(gained=2, lost=1, n=3)
    assert change.z == pytest.approx(1 / 3**0.5)
    assert change.cell() == "+2 / −1 of 3, z 0.58"
    assert PairedChange(0, 0, 5).z == 0.0
    assert paired_changes(base, [("x", labels, True)]) == {}


def test_paired_table_sets_each_model_against_the_first(tok):
    import dataclasses

    records = [r for r, _, _ in CASES]
    good = evaluate_tasks(
        scripted_model(tok, records, [r["answer"] for r in records]), tok, records
    )
    mixed = evaluate_tasks(
        scripted_model(tok, records, [reply for _, reply, _ in CASES]), tok, records
    )
    assert paired_table({"base": mixed}) == ""
    md = paired_table({"base": mixed, "sft": good, "same": mixed}).splitlines()
    assert md[0] == "| against base: gained / lost, z | sft | same |"
    assert md[2] == "| **overall** | +3 / −0 of 8, z 1.73 | +0 / −0 of 8, z 0.00 |"
    assert any(line.startswith("| task family: sorting |") for line in md)
    back = paired_table([("sft", good), ("base", mixed)]).splitlines()
    assert back[2] == "| **overall** | +0 / −3 of 8, z -1.73 |"

    # Records are matched by file name and line: the same file by another path matches,
    # an evaluation of other records has no column.
    def moved(result, path):
        preds = [
            dataclasses.replace(p, where=f"{path}:{i}") for i, p in enumerate(result.predictions)
        ]
        return dataclasses.replace(result, predictions=preds)

    here, there = moved(mixed, "w/test.jsonl"), moved(good, "../other/w/test.jsonl")
    assert paired_table({"base": here, "sft": there}).splitlines()[2] == (
        "| **overall** | +3 / −0 of 8, z 1.73 |"
    )
    assert paired_table({"base": here, "elsewhere": moved(good, "w/val.jsonl")}) == ""


def test_cli_compare_prints_accuracies_then_paired_changes(tok, tmp_path):
    records = [r for r, _, _ in CASES]
    good = evaluate_tasks(
        scripted_model(tok, records, [r["answer"] for r in records]), tok, records
    )
    mixed = evaluate_tasks(
        scripted_model(tok, records, [reply for _, reply, _ in CASES]), tok, records
    )
    write_task_eval(tmp_path / "e_base", mixed)
    write_task_eval(tmp_path / "e_sft", good)
    r = run_lmforge_inprocess("eval", "compare", f"base={tmp_path / 'e_base'}",
                              f"sft={tmp_path / 'e_sft'}")  # fmt: skip
    assert r.returncode == 0, r.stderr
    head, _, paired = r.stdout.partition("Paired on the records both scored")
    assert head.startswith("| group | base | sft |")
    assert "| **overall** | +3 / −0 of 8, z 1.73 |" in paired
    assert_clean_error(run_lmforge_inprocess("eval", "compare", str(tmp_path)), "eval tasks --out")


# ---------------------------------------------------------------------------
# A real model: batching, determinism, the CLI


@pytest.fixture(scope="module")
def random_run(tok, tmp_path_factory):
    """A run folder holding a random tiny LLaMA (no training: the numbers are not the point)."""
    from lmforge.models import build_model, get_preset, save_model
    from lmforge.runs.checkpoint import save_checkpoint

    torch.manual_seed(0)
    _, cfg = get_preset("llama-tiny")
    cfg.vocab_size, cfg.block_size = tok.vocab_size, 128
    model = build_model("llama", cfg)
    run = tmp_path_factory.mktemp("runs") / "base"
    tok.save(run / "tokenizer")
    save_checkpoint(
        run, 0, write_weights=lambda p: save_model(model, p), optimizer_state={},
        trainer_state={"stage": "pretrain", "tokenizer_hash": tok.hash},
    )  # fmt: skip
    return run


@pytest.fixture(scope="module")
def task_files(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks")
    seen = _write(root / "test.jsonl", [r for r, _, _ in CASES[:5]])
    held = _write(root / "heldout_templates.jsonl", [r for r, _, _ in CASES[5:]])
    return seen, held


def test_batched_generation_is_deterministic_and_batch_independent(random_run, task_files):
    from lmforge.runs import load_run

    run = load_run(random_run, need="decoder")
    records = load_task_files(task_files)
    cfg = TaskEvalConfig(max_new_tokens=6, batch_size=1)
    one = evaluate_tasks(run.model, run.tokenizer, records, cfg)
    cfg.batch_size = 8
    many = evaluate_tasks(run.model, run.tokenizer, records, cfg)
    again = evaluate_tasks(run.model, run.tokenizer, records, cfg)
    assert [p.to_dict() for p in one.predictions] == [p.to_dict() for p in many.predictions]
    assert [p.to_dict() for p in many.predictions] == [p.to_dict() for p in again.predictions]
    assert all(p.new_tokens <= 6 for p in many.predictions)


def test_cli_prints_the_table_and_writes_the_folder(random_run, task_files, tmp_path):
    out = tmp_path / "eval"
    args = ["eval", "tasks", "--run", random_run, "--data", *task_files,
            "--max-new-tokens", "4", "--batch-size", "4", "--quiet"]  # fmt: skip
    r = run_lmforge_inprocess(*args, "--out", out)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("| group | base@0 |")
    assert sorted(p.name for p in out.iterdir()) == [
        "accuracy.png", "predictions.jsonl", "results.json", "results.md",
    ]  # fmt: skip
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(preds) == len(CASES)
    doc = json.loads((out / "results.json").read_text())
    assert doc["kind"] == "lmforge eval tasks" and doc["n"] == len(CASES)
    assert doc["run"]["step"] == 0 and doc["config"]["max_new_tokens"] == 4
    assert [d["split"] for d in doc["data"]] == ["seen", "heldout_templates"]
    assert doc["accuracy"]["split"]["heldout_templates"]["n"] == 3
    correct = sum(p["correct"] for p in preds)
    assert doc["accuracy"]["overall"]["all"]["correct"] == correct
    table = (out / "results.md").read_text()
    assert r.stdout.split("wrote")[0] in table  # the printed table is the file's
    assert (out / "accuracy.png").read_bytes()[:4] == b"\x89PNG"

    # The same evaluation through the library gives the same predictions.
    from lmforge.runs import load_run

    run = load_run(random_run, need="decoder")
    lib = evaluate_tasks(run.model, run.tokenizer, load_task_files(task_files),
                         TaskEvalConfig(max_new_tokens=4))  # fmt: skip
    assert [p.to_dict() for p in lib.predictions] == preds

    # Its own folder is replaced only with --force; a folder it did not make, never.
    assert_clean_error(run_lmforge_inprocess(*args, "--out", out), "--force")
    r = run_lmforge_inprocess(*args, "--out", out, "--force", "--limit", "1")
    assert r.returncode == 0, r.stderr
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 2  # 1 per file
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    assert_clean_error(run_lmforge_inprocess(*args, "--out", other, "--force"), "does not hold")
    assert (other / "notes.txt").read_text() == "mine"
    assert_clean_error(run_lmforge_inprocess(*args, "--out", random_run / "eval"), "inside the run")


def test_cli_bad_input_is_one_line(random_run, task_files, tmp_path):
    seen, _ = task_files
    run = ["eval", "tasks", "--run"]
    assert_clean_error(run_lmforge_inprocess(*run, tmp_path, "--data", seen), "not a run folder")
    assert_clean_error(
        run_lmforge_inprocess(*run, random_run, "--data", tmp_path / "none.jsonl"),
        "none.jsonl: no such file",
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps(CASES[0][0]) + "\n[1, 2\n", encoding="utf-8")
    assert_clean_error(run_lmforge_inprocess(*run, random_run, "--data", bad), f"{bad}:2")
    plain = _write(tmp_path / "plain.jsonl", [{"messages": CASES[0][0]["messages"]}])
    assert_clean_error(
        run_lmforge_inprocess(*run, random_run, "--data", plain), f"{plain}:1", "no 'answer'"
    )
    assert_clean_error(
        run_lmforge_inprocess(*run, random_run, "--data", seen, "--too-long", "maybe"), "too_long"
    )


def test_write_task_eval_leaves_nothing_half_written(tok, tmp_path, monkeypatch):
    import lmforge.eval.tasks_report as report

    records = [r for r, _, _ in CASES[:2]]
    result = evaluate_tasks(scripted_model(tok, records, ["5", "42"]), tok, records)
    out = write_task_eval(tmp_path / "ev", result)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def broken(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(report, "plot_comparison", broken)
    with pytest.raises(OSError):
        write_task_eval(out, result)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["ev"]
