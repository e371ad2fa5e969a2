"""`lmforge sft`: exact packing, assistant-only targets, the batch source, the stage, bad input.

The parent is the tiny LLaMA of `tiny_run` (its tokenizer has the role tokens);
conversations are written here (`sft_helpers`). Data-side tests run the model
directly; stage tests go through the CLI in this process (a SIGINT too: it is sent
to this process), and only the SIGKILL and torchrun tests start subprocesses.
"""
# ruff: noqa: F811 (pytest fixtures imported from test_pretrain_helpers are redefined as arguments)

from __future__ import annotations

import json
import math
import re
import signal
from pathlib import Path

import pytest
import torch
from conftest import assert_clean_error, run_lmforge_inprocess
from sft_helpers import (
    SFT,
    chat_records,
    files,
    make_roleless_run,
    sft_proc,
    short_records,
    train_losses,
    write_jsonl,
)
from test_pretrain_helpers import (  # noqa: F401 (fixtures)
    assert_same_weights,
    cli,
    make_corpus,
    tiny_run,
    tiny_shards,
)

from lmforge.common import LmforgeError
from lmforge.data.sft import IGNORE, PackedChatBatches, collate_rows, pack, render_examples
from lmforge.runs import load_run
from lmforge.runs.checkpoint import latest_checkpoint, open_checkpoint
from lmforge.tokenizers.chat import ChatTokens, Conversation, render_chat
from lmforge.train.sft import SFTObjective

KILLED = -signal.SIGKILL
STEPS = ["--max-steps", "6", "--save-every", "3"]  # checkpoints step_3 and step_6


def convs(records: list[dict]) -> list[Conversation]:
    return [Conversation.from_dicts(r["messages"]) for r in records]


@pytest.fixture(scope="module")
def parent(tiny_run):
    """The tiny run's model (fp32, eval) and tokenizer."""
    run = load_run(tiny_run)
    return run.model.float().eval(), run.tokenizer


@pytest.fixture(scope="module")
def sharp(parent):
    """The tiny run's weights plus seeded noise: random and far from uniform, so that a
    mask or position error changes the loss by a lot (checked below), not by rounding."""
    import copy

    model, tok = parent
    model = copy.deepcopy(model)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.add_(torch.randn(p.shape, generator=g) * 0.15)
    return model, tok


@pytest.fixture(scope="module")
def short(parent):
    """Rendered short conversations: several fit in one 65-token row."""
    _, tok = parent
    examples, stats = render_examples(tok, convs(short_records()), 64)
    assert stats.kept == 24 and max(map(len, examples)) <= 32
    return examples


def alone(model, ex: ChatTokens) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits (1, n-1, V), summed loss) of one rendered conversation run by itself."""
    ids = torch.tensor([ex.ids[:-1]])
    targets = torch.tensor([[t if m else IGNORE for t, m in zip(ex.ids[1:], ex.loss_mask[1:])]])
    with torch.no_grad():
        logits, loss = model(ids, targets=targets, reduction="sum")
    return logits, loss


# --- packing and targets -------------------------------------------------------------


def test_packed_loss_equals_the_sum_of_each_conversation_alone(sharp, short):
    model, tok = sharp
    src = PackedChatBatches(short, 3, 64, pad_id=tok.pad_id, seed=1)
    rows = src.plan(0)[:3]
    assert sum(map(len, rows)) >= 7 and max(map(len, rows)) >= 3  # several per row
    batch = src.next_batch()
    with torch.no_grad():
        out = SFTObjective().compute_loss(model, batch)
    total = sum(alone(model, short[i])[1].item() for row in rows for i in row)
    n_assistant = sum(short[i].n_targets for row in rows for i in row)
    assert int(out.n_tokens) == n_assistant
    # fp32 sums of ~300: 1e-5 relative is a few ulps of the total.
    assert abs(out.loss_sum.item() - total) <= 1e-5 * total, (out.loss_sum.item(), total)
    assert total / n_assistant > math.log(tok.vocab_size)  # far from a uniform model
    # The check has teeth: letting attention cross conversations changes the sum a lot.
    with torch.no_grad():
        _, crossed = model(batch["ids"], targets=batch["targets"], reduction="sum")
    assert abs(crossed.item() - total) > 1.0


def test_targets_of_a_hand_checked_row(parent):
    _, tok = parent
    a = render_chat(tok, [{"role": "user", "content": "Anna"},
                          {"role": "assistant", "content": "the river"}])  # fmt: skip
    b = render_chat(tok, [{"role": "system", "content": "Be brief."},
                          {"role": "user", "content": "Boris"},
                          {"role": "assistant", "content": "the market"}])  # fmt: skip
    U, A, S, E = tok.user_id, tok.assistant_id, tok.system_id, tok.end_id
    anna, river = tok.encode("Anna"), tok.encode("the river")
    brief, boris, market = tok.encode("Be brief."), tok.encode("Boris"), tok.encode("the market")
    T = 40
    batch = collate_rows([a, b], [[0, 1]], T, pad_id=tok.pad_id)
    row_a = [U, *anna, E, A, *river, E]
    row_b = [S, *brief, E, U, *boris, E, A, *market, E]
    n = len(row_a) + len(row_b)
    assert batch["ids"][0].tolist() == row_a + row_b + [tok.pad_id] * (T - n)
    # targets[t] is token t+1 where that token is assistant content or its <|end|>.
    ign = [IGNORE]
    want = (
        ign * (1 + len(anna) + 1)  # predicting "Anna", <|end|>, <|assistant|>
        + river + [E]
        + ign  # predicting b's <|system|>: the next conversation
        + ign * (len(brief) + 1 + 1 + len(boris) + 1 + 1)  # b's prompt and headers
        + market + [E]
        + ign * (T - n + 1)  # from b's last <|end|> on: predicting padding
    )  # fmt: skip
    assert batch["targets"][0].tolist() == want
    assert batch["doc_ids"][0].tolist() == [0] * len(row_a) + [1] * len(row_b) + [2] * (T - n)


def test_targets_never_cross_a_conversation_or_touch_padding(parent, short):
    _, tok = parent
    src = PackedChatBatches(short, 7, 64, pad_id=tok.pad_id, seed=3)
    batch = src.next_batch()  # the whole epoch
    ids, targets, doc = batch["ids"], batch["targets"], batch["doc_ids"]
    on = targets != IGNORE
    assert int(on.sum()) == sum(e.n_targets for e in short)  # every assistant token, once
    # A target at t is token t+1 of the same conversation.
    assert bool((doc[:, 1:] == doc[:, :-1])[on[:, :-1]].all())
    assert bool((targets[:, :-1] == ids[:, 1:])[on[:, :-1]].all())
    pad = doc == doc.max(dim=1, keepdim=True).values  # padding is each row's last document
    pad &= ids == tok.pad_id
    assert pad.any() and not on[pad].any() and not on[:, :-1][pad[:, 1:]].any()
    # The rows hold the rendered conversations, in plan order, token for token.
    for b, row in enumerate(src.plan(0)):
        flat = [t for i in row for t in short[i].ids]
        assert ids[b, : min(len(flat), 64)].tolist() == flat[:64]


def test_a_trained_first_token_is_still_not_a_target_across_a_boundary():
    """collate_rows' guard: even a rendering whose first token were trained gets none."""
    a = ChatTokens([10, 11, 12], [0, 1, 1], [(0, 3)], ["assistant"])
    b = ChatTokens([20, 21, 22], [1, 1, 1], [(0, 3)], ["assistant"])
    batch = collate_rows([a, b], [[0, 1]], 6, pad_id=0)
    assert batch["targets"][0].tolist() == [11, 12, IGNORE, 21, 22, IGNORE]


def test_doc_ids_restart_positions(sharp, short):
    """A conversation packed after others computes the logits it computes alone."""
    model, tok = sharp
    row = next(r for r in pack([len(e) for e in short], range(len(short)), 65) if len(r) >= 3)
    batch = collate_rows(short, [row], 64, pad_id=tok.pad_id)
    with torch.no_grad():
        packed, _ = model(batch["ids"], doc_ids=batch["doc_ids"])
        unmasked, _ = model(batch["ids"])
    pos = 0
    for i in row:
        ex = short[i]
        n = min(len(ex), 64 - pos)
        own, _ = alone(model, ex)
        k = min(n, own.shape[1])
        torch.testing.assert_close(packed[0, pos : pos + k], own[0, :k], rtol=0, atol=1e-5)
        if pos > 0:  # the check has teeth: without doc_ids the later ones differ
            assert (unmasked[0, pos : pos + k] - own[0, :k]).abs().max() > 1e-2
        pos += len(ex)


def test_render_examples_truncates_old_turns_and_drops_what_cannot_fit(parent):
    _, tok = parent
    long_history = [{"role": "system", "content": "Be brief."}]
    for k in range(6):
        long_history += [{"role": "user", "content": f"Where did Anna go {k}?"},
                         {"role": "assistant", "content": "Anna went to the river."}]  # fmt: skip
    too_long = [{"role": "user", "content": "Anna " * 60},
                {"role": "assistant", "content": "ok"}]  # fmt: skip
    fine = [{"role": "user", "content": "Boris"}, {"role": "assistant", "content": "the market"}]
    got, stats = render_examples(tok, convs([{"messages": m} for m in
                                             (long_history, too_long, fine)]), 63)  # fmt: skip
    assert (stats.kept, stats.truncated, stats.dropped) == (2, 1, 1)
    cut = got[0]
    assert len(cut) <= 64 and cut.roles[0] == "system" and cut.roles[-1] == "assistant"
    assert cut.roles[1] == "user" and cut.n_targets > 0
    assert stats.targets == sum(e.n_targets for e in got)
    with pytest.raises(LmforgeError, match="--seq-len"):
        render_examples(tok, convs([{"messages": too_long}]), 63)


# --- the batch source ----------------------------------------------------------------


def batches_of(src: PackedChatBatches, n: int) -> list[dict[str, torch.Tensor]]:
    return [src.next_batch() for _ in range(n)]


def same(xs, ys) -> bool:
    return len(xs) == len(ys) and all(
        all(torch.equal(x[k], y[k]) for k in ("ids", "targets", "doc_ids")) for x, y in zip(xs, ys)
    )


def test_batches_are_deterministic_for_a_seed(parent, short):
    _, tok = parent
    make = lambda seed: PackedChatBatches(short, 2, 64, pad_id=tok.pad_id, seed=seed)  # noqa: E731
    assert same(batches_of(make(5), 6), batches_of(make(5), 6))
    assert not same(batches_of(make(5), 6), batches_of(make(6), 6))
    unshuffled = PackedChatBatches(short, 2, 64, pad_id=tok.pad_id, shuffle=False)
    assert unshuffled.plan(0) == unshuffled.plan(1) == pack([len(e) for e in short],
                                                            range(24), 65)  # fmt: skip


def test_epochs_advance_and_each_covers_every_conversation_once(parent, short):
    _, tok = parent
    src = PackedChatBatches(short, 1, 64, pad_id=tok.pad_id, seed=2)
    n = src.rows_per_epoch
    for epoch in range(3):
        plan = src.plan(epoch)
        assert sorted(i for row in plan for i in row) == list(range(len(short)))
        assert all(sum(len(short[i]) for i in row) <= 65 for row in plan)
    assert src.plan(0) != src.plan(1)  # reshuffled every epoch
    batches_of(src, n - 1)
    assert src.epoch_index == 0 and src.epoch == pytest.approx((n - 1) / n)
    batches_of(src, 1)
    assert (src.epoch_index, src.cursor, src.epoch) == (1, 0, 1.0)
    # A batch that straddles the boundary takes the end of one epoch and the start of the next.
    big = PackedChatBatches(short, n + 2, 64, pad_id=tok.pad_id, seed=2)
    rows = big.next_batch()
    first = collate_rows(short, src.plan(0) + src.plan(1)[:2], 64, tok.pad_id)
    assert same([rows], [first]) and (big.epoch_index, big.cursor) == (1, 2)


def test_state_dict_resume_gives_the_same_next_batches(parent, short):
    _, tok = parent
    make = lambda: PackedChatBatches(short, 3, 64, pad_id=tok.pad_id, seed=9)  # noqa: E731
    a = make()
    batches_of(a, 2)
    state = json.loads(json.dumps(a.state_dict()))  # as a checkpoint stores it
    want = batches_of(a, 5)  # crosses into the next epochs
    b = make()
    b.load_state_dict(state)
    assert same(batches_of(b, 5), want)
    with pytest.raises(LmforgeError, match="same --data"):
        PackedChatBatches(short[:-1], 3, 64, pad_id=tok.pad_id).load_state_dict(state)


def test_ranks_take_disjoint_rows_whose_union_is_the_single_process_batch(parent):
    _, tok = parent
    records = [{"messages": [{"role": "user", "content": f"{i}"},
                             {"role": "assistant", "content": f"Anna {i}"}]}
               for i in range(30)]  # fmt: skip
    examples, _ = render_examples(tok, convs(records), 64)
    one = PackedChatBatches(examples, 4, 64, pad_id=tok.pad_id, seed=4)
    ranks = [PackedChatBatches(examples, 2, 64, pad_id=tok.pad_id, seed=4, rank=r, world_size=2)
             for r in (0, 1)]  # fmt: skip
    for _ in range(4):  # past the end of the epoch
        whole = one.next_batch()
        parts = [r.next_batch() for r in ranks]
        for k in ("ids", "targets", "doc_ids"):
            assert torch.equal(torch.cat([p[k] for p in parts]), whole[k])
        rows = [{tuple(r) for r in p["ids"].tolist()} for p in parts]
        assert len(rows[0]) == len(rows[1]) == 2 and not rows[0] & rows[1]
    assert [r.state_dict() for r in ranks] == [one.state_dict()] * 2


def test_eval_batches_hold_every_conversation_once_on_any_world_size(parent, short):
    _, tok = parent
    want = sum(e.n_targets for e in short)
    for world in (1, 2, 3):
        shares = [
            PackedChatBatches(short, 2, 64, pad_id=tok.pad_id, rank=r, world_size=world,
                              shuffle=False).eval_batches()
            for r in range(world)
        ]  # fmt: skip
        assert len({len(s) for s in shares}) == 1  # the same number of forwards on every rank
        got = sum(int((b["targets"] != IGNORE).sum()) for s in shares for b in s)
        assert got == want, world


# --- the stage -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    """20 conversations in a JSONL file of their own folder."""
    return write_jsonl(tmp_path_factory.mktemp("sft_data") / "chat.jsonl", chat_records())


@pytest.fixture(scope="module")
def ref_run(tiny_run, data, tmp_path_factory) -> Path:
    """An uninterrupted 6-step SFT run (checkpoints at 3 and 6)."""
    out = tmp_path_factory.mktemp("sft_ref") / "run"
    r = run_lmforge_inprocess("sft", "--from", tiny_run, "--data", data, "--out", out, *SFT,
                              *STEPS)  # fmt: skip
    assert r.returncode == 0, r.stderr
    return out


def test_the_run_folder_is_complete(ref_run, tiny_run, data, parent):
    from lmforge.data.instructions import read_instructions
    from lmforge.stages.sft import split_val

    for name in ("config.yaml", "tokenizer/tokenizer.json", "metrics.jsonl", "report.md",
                 "plots/loss.png", "checkpoints/step_3", "checkpoints/step_6"):  # fmt: skip
        assert (ref_run / name).exists(), name
    ck = open_checkpoint(latest_checkpoint(ref_run))
    assert ck.step == 6 and ck.state["stage"] == "sft"
    assert ck.state["parent"]["run"] == str(tiny_run.resolve())
    assert [s for s, _ in train_losses(ref_run)] == list(range(1, 7))
    # tokens_seen counts assistant tokens: those of the first 6 batches of the same plan.
    _, tok = parent
    train, val = split_val(read_instructions(data).conversations, 0.02, 1337)
    assert (len(train), len(val)) == (19, 1)
    examples, _ = render_examples(tok, train, 64)
    src = PackedChatBatches(examples, 4, 64, pad_id=tok.pad_id, seed=1337)
    want = sum(int((b["targets"] != IGNORE).sum()) for b in batches_of(src, 6))
    assert ck.state["tokens_seen"] == want
    report = (ref_run / "report.md").read_text()
    m = re.search(r"\| assistant tokens trained \(all steps\) \| ([\d,]+) \|", report)
    assert m and int(m.group(1).replace(",", "")) == want, report
    assert "validation conversations | 1 |" in report
    assert any("val_loss" in x for x in (ref_run / "metrics.jsonl").read_text().splitlines())


def test_sample_opens_an_sft_run(ref_run, capsys):
    r = cli(capsys, "sample", "--run", ref_run, "--prompt", "Where did Anna go?",
            "--max-new-tokens", "4", "--quiet")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip()


def test_loss_decreases_on_a_repetitive_dataset(tiny_run, data, tmp_path, capsys):
    out = tmp_path / "run"
    r = cli(capsys, "sft", "--from", tiny_run, "--data", data, "--out", out, *SFT,
            "--max-steps", "40", "--save-every", "0", "--val-fraction", "0")  # fmt: skip
    assert r.returncode == 0, r.stderr
    losses = [loss for _, loss in train_losses(out)]
    assert len(losses) == 40
    first, last = losses[0], sum(losses[-5:]) / 5
    assert last < first - 2.0, (first, last)


def test_killed_then_resumed_is_bitwise_equal_to_an_uninterrupted_run(
    ref_run, tiny_run, data, tmp_path
):
    """SIGKILL after step 4, then during the write of checkpoint 6; then finish."""
    out = tmp_path / "run"
    r = sft_proc("--from", tiny_run, "--data", data, "--out", out, *SFT, *STEPS, after_step=4)
    assert r.returncode == KILLED, r.stderr
    assert latest_checkpoint(out).name == "step_3"
    r = sft_proc("--out", out, "--resume", in_checkpoint=6)
    assert r.returncode == KILLED, r.stderr
    half = out / "checkpoints" / "step_6.tmp"
    assert (half / "model.safetensors").is_file() and not (half / "optimizer.pt").exists()
    assert open_checkpoint(latest_checkpoint(out)).step == 3
    r = run_lmforge_inprocess("sft", "--out", out, "--resume", "--quiet")
    assert r.returncode == 0, r.stderr
    assert_same_weights(out / "checkpoints" / "step_6", ref_run / "checkpoints" / "step_6")
    assert train_losses(out) == train_losses(ref_run)  # one run's metrics, nothing twice


def test_sigint_saves_a_checkpoint_and_resume_is_bitwise_equal(
    ref_run, tiny_run, data, tmp_path, capsys, monkeypatch
):
    """A real SIGINT to this process before step 4 (tests/_killable.py's hook, added to the
    stage's loop): the loop finishes step 4, saves it and the CLI exits 130."""
    from _killable import SignalAfterStep

    import lmforge.stages.sft as stage

    real = stage.train

    def train(*a, hooks=(), **kw):
        return real(*a, hooks=[*hooks, SignalAfterStep(3, signal.SIGINT)], **kw)

    monkeypatch.setattr(stage, "train", train)
    out = tmp_path / "run"
    args = ["sft", "--from", tiny_run, "--data", data, "--out", out, *SFT, *STEPS]
    r = cli(capsys, *args)
    monkeypatch.undo()
    assert r.returncode == 130, r.stderr
    last = [ln for ln in r.stderr.splitlines() if ln.strip()][-1]
    assert "--resume" in last and "step_4" in last, r.stderr
    assert latest_checkpoint(out).name == "step_4"  # between the save points 3 and 6
    r = cli(capsys, *args, "--resume")
    assert r.returncode == 0, r.stderr
    assert_same_weights(out / "checkpoints" / "step_6", ref_run / "checkpoints" / "step_6")
    assert train_losses(out) == train_losses(ref_run)


@pytest.mark.slow
def test_two_processes_train_like_one(ref_run, tiny_run, data, tmp_path):
    """torchrun (gloo): 2 processes x batch 2 follow the curve of 1 process x batch 4."""
    import os
    import subprocess
    import sys

    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "lmforge", "sft", "--from", str(tiny_run), "--data", str(data), "--out", str(out),
           *SFT, *STEPS, "--batch-size", "2"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    two, one = train_losses(out), train_losses(ref_run)
    assert [s for s, _ in two] == [s for s, _ in one] == list(range(1, 7))
    assert [x for _, x in two] == pytest.approx([x for _, x in one], rel=1e-4)
    val = [json.loads(x)["val_loss"] for run in (out, ref_run)
           for x in (run / "metrics.jsonl").read_text().splitlines() if "val_loss" in x]  # fmt: skip
    assert len(val) == 2 and val[0] == pytest.approx(val[1], rel=1e-4)
    a, b = (open_checkpoint(latest_checkpoint(x)).state for x in (out, ref_run))
    assert a["world_size"] == 2 and a["tokens_seen"] == b["tokens_seen"]


def test_epochs_set_the_steps_and_a_finished_run_resumes_as_complete(
    tiny_run, data, parent, tmp_path, capsys
):
    _, tok = parent
    out = tmp_path / "run"
    flags = [*SFT, "--batch-size", "1", "--val-fraction", "0", "--save-every", "0"]
    r = cli(capsys, "sft", "--from", tiny_run, "--data", data, "--out", out, *flags,
            "--epochs", "1")  # fmt: skip
    assert r.returncode == 0, r.stderr
    examples, stats = render_examples(tok, convs(chat_records()), 64)
    src = PackedChatBatches(examples, 1, 64, pad_id=tok.pad_id, seed=1337)
    rows = [len(src.plan(e)) for e in (0, 1)]
    ck = open_checkpoint(latest_checkpoint(out))
    # One row per step: one epoch is every packed row once, every assistant token once.
    assert ck.step == rows[0] and ck.state["tokens_seen"] == stats.targets
    assert ck.state["data"][0]["epoch"] == 1 and ck.state["data"][0]["cursor"] == 0
    before = files(out)
    r = cli(capsys, "sft", "--out", out, "--resume")
    assert r.returncode == 0, r.stderr
    assert "is complete" in r.stdout and "--epochs" in r.stdout, r.stdout
    assert files(out) == before
    # More epochs train on, to the end of the second epoch's own plan.
    r = cli(capsys, "sft", "--out", out, "--resume", "--epochs", "2", "--quiet")
    assert r.returncode == 0, r.stderr
    ck = open_checkpoint(latest_checkpoint(out))
    assert ck.step == sum(rows) and ck.state["tokens_seen"] == 2 * stats.targets
    assert ck.state["data"][0]["epoch"] == 2 and ck.state["data"][0]["cursor"] == 0


# --- bad input: one line, exit 2, nothing written ---------------------------------------


def _mixture(tmp_path: Path, source: str) -> Path:
    write_jsonl(tmp_path / "chat.jsonl", chat_records(4))
    (tmp_path / "mix.yaml").write_text(f"seed: 0\nsources:\n  - {source}\n")
    return tmp_path / "mix.yaml"


GOOD = {"messages": [{"role": "user", "content": "Anna?"},
                     {"role": "assistant", "content": "the river"}]}  # fmt: skip
BAD_DATA = {
    "malformed JSONL line": (
        lambda d: write_jsonl(d / "c.jsonl", [GOOD]).open("a").write('{"messages": [\n'),
        ["c.jsonl:2"],
    ),
    "unknown role": (
        lambda d: write_jsonl(d / "c.jsonl", [GOOD, {"messages": [
            {"role": "robot", "content": "hi"}, {"role": "assistant", "content": "x"}]}]),
        ["c.jsonl:2", "robot"],
    ),
    "no assistant turn": (
        lambda d: write_jsonl(d / "c.jsonl", [GOOD, GOOD, {"messages": [
            {"role": "user", "content": "hi"}]}]),
        ["c.jsonl:3", "assistant"],
    ),
    "empty data file": (lambda d: (d / "c.jsonl").write_text(""), ["c.jsonl"]),
    "mixture naming a missing file": (
        lambda d: _mixture(d, "{name: a, path: gone.jsonl}"),
        ["mix.yaml:3", "gone.jsonl"],
    ),
    "mixture with a negative weight": (
        lambda d: _mixture(d, "{name: a, path: chat.jsonl, weight: -1}"),
        ["mix.yaml:3", "weight"],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD_DATA))
def test_bad_data_is_one_line_and_writes_nothing(case, tiny_run, tmp_path, capsys):
    make, needles = BAD_DATA[case]
    d = tmp_path / "data"
    d.mkdir()
    make(d)
    path = d / "mix.yaml" if (d / "mix.yaml").exists() else d / "c.jsonl"
    before = files(d)
    out = tmp_path / "out"
    r = cli(capsys, "sft", "--from", tiny_run, "--data", path, "--out", out, *SFT, *STEPS)
    assert_clean_error(r, *needles)
    assert not out.exists()
    assert files(d) == before


def test_from_a_folder_that_is_not_a_run(data, tmp_path, capsys):
    notrun = tmp_path / "notes"
    notrun.mkdir()
    (notrun / "a.txt").write_text("mine")
    out = tmp_path / "out"
    r = cli(capsys, "sft", "--from", notrun, "--data", data, "--out", out, *SFT, *STEPS)
    assert_clean_error(r, str(notrun), "not a run folder")
    assert not out.exists()


def test_seq_len_above_the_models_context(tiny_run, data, tmp_path, capsys):
    out = tmp_path / "out"
    r = cli(capsys, "sft", "--from", tiny_run, "--data", data, "--out", out, *SFT, *STEPS,
            "--seq-len", "65")  # fmt: skip
    assert_clean_error(r, "seq_len", "block_size=64")
    assert not out.exists()


@pytest.mark.parametrize("how", ["data file", "mixture source folder", "recursive glob"])
def test_out_overlapping_the_data_is_refused(how, tiny_run, tmp_path, capsys):
    d = tmp_path / "d"
    write_jsonl(d / "chat.jsonl", chat_records(4))
    if how == "data file":  # --out would contain the data
        data, out = d / "chat.jsonl", d
    elif how == "mixture source folder":  # the run would be read back as data next time
        (tmp_path / "mix.yaml").write_text("sources:\n  - {name: a, path: d}\n")
        data, out = tmp_path / "mix.yaml", d / "run"
    else:
        data, out = f"{d}/**/*.jsonl", d / "run"
    before = files(tmp_path)
    r = cli(capsys, "sft", "--from", tiny_run, "--data", data, "--out", out, *SFT, *STEPS,
            "--force")  # fmt: skip
    assert_clean_error(r, "--out", "the data")
    assert files(tmp_path) == before and not (d / "run").exists()


def test_a_mixture_yaml_trains(tiny_run, tmp_path, capsys):
    write_jsonl(tmp_path / "a.jsonl", chat_records(8, seed=1))
    write_jsonl(tmp_path / "b.jsonl", short_records(8, seed=2))
    (tmp_path / "mix.yaml").write_text(
        "seed: 3\nsources:\n  - {name: places, path: a.jsonl}\n"
        "  - {name: short, path: b.jsonl, cap: 4}\n"
    )
    out = tmp_path / "out"
    r = cli(capsys, "sft", "--from", tiny_run, "--data", tmp_path / "mix.yaml", "--out", out,
            *SFT, "--max-steps", "2", "--save-every", "0", "--val-fraction", "0")  # fmt: skip
    assert r.returncode == 0, r.stderr
    report = (out / "report.md").read_text()
    assert "| conversations given | 12 |" in report, report
    assert open_checkpoint(latest_checkpoint(out)).step == 2


def test_a_system_message_after_the_first_turn_names_its_line(tiny_run, tmp_path, capsys):
    bad = {"messages": [{"role": "user", "content": "hi"}, {"role": "system", "content": "be"},
                        {"role": "assistant", "content": "yo"}]}  # fmt: skip
    path = write_jsonl(tmp_path / "c.jsonl", [GOOD, GOOD, bad])
    out = tmp_path / "out"
    r = cli(capsys, "sft", "--from", tiny_run, "--data", path, "--out", out, *SFT, *STEPS)
    assert not out.exists()
    assert_clean_error(r, "c.jsonl:3", "system")


@pytest.fixture(scope="module")
def roleless_run(tmp_path_factory) -> Path:
    return make_roleless_run(tmp_path_factory.mktemp("roleless"), make_corpus(120))


def test_a_parent_without_role_tokens_names_add_chat_tokens_and_it_then_works(
    roleless_run, data, tmp_path, capsys
):
    out = tmp_path / "out"
    before = files(roleless_run)
    r = cli(capsys, "sft", "--from", roleless_run, "--data", data, "--out", out, *SFT,
            "--max-steps", "3", "--seq-len", "0")  # fmt: skip
    assert_clean_error(r, "no chat role tokens", "--add-chat-tokens")
    assert not out.exists()

    r = cli(capsys, "sft", "--from", roleless_run, "--data", data, "--out", out, *SFT,
            "--max-steps", "3", "--seq-len", "0", "--add-chat-tokens")  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert files(roleless_run) == before  # the parent's tokenizer is not changed on disk
    old, new = load_run(roleless_run), load_run(out)
    assert new.tokenizer.vocab_size == old.tokenizer.vocab_size + 4
    assert new.model.config.vocab_size == new.tokenizer.vocab_size
    assert new.model.tok_emb.weight.shape[0] == new.tokenizer.vocab_size
    ids = [new.tokenizer.special_id(r) for r in ("system", "user", "assistant", "end")]
    assert sorted(ids) == list(range(old.tokenizer.vocab_size, new.tokenizer.vocab_size))
    assert [s for s, _ in train_losses(out)] == [1, 2, 3]
    # The old rows are the parent's, untouched by the resize (3 steps moved them a little).
    n = old.tokenizer.vocab_size
    assert torch.allclose(new.model.tok_emb.weight[:n], old.model.tok_emb.weight, atol=0.05)
    # And it resumes (the run's own tokenizer has the roles now).
    r = cli(capsys, "sft", "--out", out, "--resume", "--max-steps", "4", "--quiet")
    assert r.returncode == 0, r.stderr
    assert open_checkpoint(latest_checkpoint(out)).step == 4


def test_resume_of_a_finished_run_says_complete_and_writes_nothing(ref_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(ref_run, run)
    before = files(run)
    r = cli(capsys, "sft", "--out", run, "--resume")
    assert r.returncode == 0, r.stderr
    assert "is complete" in r.stdout and "--max-steps" in r.stdout, r.stdout
    assert files(run) == before


def test_force_with_bad_data_leaves_the_old_run_untouched(ref_run, tiny_run, tmp_path, capsys):
    """The data is read before --force empties the folder: a failed restart destroys nothing."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(ref_run, run)
    before = files(run)
    bad = write_jsonl(
        tmp_path / "c.jsonl", [GOOD, {"messages": [{"role": "user", "content": "x"}]}]
    )
    r = cli(capsys, "sft", "--from", tiny_run, "--data", bad, "--out", run, *SFT, *STEPS, "--force")
    assert_clean_error(r, "c.jsonl:2")
    assert files(run) == before


def test_failed_sft_into_an_existing_empty_folder_keeps_it_empty(tiny_run, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    bad = write_jsonl(tmp_path / "c.jsonl", [{"messages": [{"role": "user", "content": "x"}]}])
    r = cli(capsys, "sft", "--from", tiny_run, "--data", bad, "--out", out, *SFT, *STEPS)
    assert_clean_error(r, "c.jsonl:1")
    assert out.is_dir() and not any(out.iterdir())
