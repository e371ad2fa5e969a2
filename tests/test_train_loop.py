"""The one training loop against a tiny module: learning, resume, NaN guard, metrics, accumulation."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import load_file
from torch import nn

from lmforge.common import LmforgeError
from lmforge.runs.checkpoint import find_resume_checkpoint, latest_checkpoint
from lmforge.train.config import TrainConfig
from lmforge.train.loop import train
from lmforge.train.objective import LossOutput


class TinyLM(nn.Module):
    """A bigram-ish LM: embedding → norm → linear head, with the lmforge forward contract."""

    def __init__(self, vocab: int = 16, d: int = 16):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab)

    def forward(self, ids, targets=None, kv_cache=None):
        logits = self.head(self.norm(self.emb(ids)))  # (B, T, V)
        loss = None
        if targets is not None:
            loss = nn.functional.cross_entropy(logits.flatten(0, 1).float(), targets.flatten())
        return logits, loss


class CycleSource:
    """Sequences of `i, i+1, ...` mod vocab from seeded random starts: learnable, reproducible."""

    def __init__(self, batch_size: int = 4, seq_len: int = 8, vocab: int = 16, seed: int = 0):
        self.b, self.t, self.v, self.seed, self.pos = batch_size, seq_len, vocab, seed, 0

    def next_batch(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.pos)
        self.pos += 1
        start = torch.randint(0, self.v, (self.b, 1), generator=g)
        seq = (start + torch.arange(self.t + 1)) % self.v  # (B, T+1)
        return seq[:, :-1], seq[:, 1:]

    def state_dict(self):
        return {"pos": self.pos}

    def load_state_dict(self, state):
        self.pos = state["pos"]


class LMObjective:
    def compute_loss(self, model, batch):
        x, y = batch
        _, loss = model(x, targets=y)
        return LossOutput(loss * y.numel(), y.numel(), {"first_token_loss": loss.detach() * 0 + 1})


def cfg(**kw) -> TrainConfig:
    base = dict(
        batch_size=4,
        max_steps=12,
        lr=3e-2,
        min_lr=3e-3,
        warmup=2,
        eval_every=0,
        save_every=4,
        log_every=2,
        dtype="fp32",
        device="cpu",
        threads=1,
        parallel="none",
    )
    base.update(kw)
    return TrainConfig(**base)


def run(tmp_path, c: TrainConfig, *, resume=None, source=None, seed=0, objective=None, **kw):
    torch.manual_seed(seed)
    model = TinyLM()
    res = train(
        model,
        objective or LMObjective(),
        source or CycleSource(),
        c,
        run_dir=tmp_path,
        resume=resume,
        weights_metadata={"note": "test"},
        **kw,
    )
    return model, res


def test_loss_decreases_and_run_folder_is_complete(tmp_path):
    evals = []

    def evaluator(model):
        x, y = CycleSource(seed=99).next_batch()
        evals.append(model.training)
        return {"val_loss": model(x, targets=y)[1].item()}

    model, res = run(tmp_path, cfg(max_steps=30, eval_every=10), evaluator=evaluator)
    recs = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    train_recs = [r for r in recs if "loss" in r]
    assert train_recs[-1]["loss"] < 0.5 * train_recs[0]["loss"]
    for key in ("step", "loss", "lr", "tokens_seen", "tok_per_s", "grad_norm", "elapsed_s"):
        assert key in train_recs[0]
    assert train_recs[0]["train_first_token_loss"] == pytest.approx(1.0)
    assert [r["step"] for r in recs if "val_loss" in r] == [10, 20, 30]
    assert evals == [False, False, False] and model.training  # eval mode only inside eval
    assert res.step == 30 and res.tokens_seen == 30 * 4 * 8
    assert res.best_val_loss == min(r["val_loss"] for r in recs if "val_loss" in r)
    assert (tmp_path / "plots" / "loss.png").stat().st_size > 1000
    assert (tmp_path / "plots" / "lr.png").is_file()
    assert any((tmp_path / "tb").iterdir())
    assert (tmp_path / "latest").read_text().strip() == "step_30"
    # keep_last=2: only the two newest checkpoints stay.
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_28", "step_30"]
    sd = load_file(tmp_path / "checkpoints" / "step_30" / "model.safetensors")
    assert torch.equal(sd["head.weight"], model.head.weight)


class Crash(Exception):
    pass


class CrashingSource(CycleSource):
    """Raises (like a killed process) when asked for batch number `at` (0-based)."""

    def __init__(self, at: int):
        super().__init__()
        self.at = at

    def next_batch(self):
        if self.pos == self.at:
            raise Crash
        return super().next_batch()


def test_resume_is_bitwise_exact(tmp_path):
    full, _ = run(tmp_path / "a", cfg())
    # Crash in step 7: the checkpoint at step 4 is the latest; steps 5, 6 are redone.
    with pytest.raises(Crash):
        run(tmp_path / "b", cfg(), source=CrashingSource(6))
    ck = find_resume_checkpoint(tmp_path / "b")
    assert ck.step == 4
    resumed, res = run(tmp_path / "b", cfg(), resume=ck, seed=123)  # init seed must not matter
    assert res.step == 12
    for (n, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), n
    a = (tmp_path / "a" / "checkpoints" / "step_12" / "model.safetensors").read_bytes()
    b = (tmp_path / "b" / "checkpoints" / "step_12" / "model.safetensors").read_bytes()
    assert a == b
    # metrics.jsonl reads as one run: steps past the checkpoint were dropped, then rewritten.
    steps = [json.loads(x)["step"] for x in (tmp_path / "b" / "metrics.jsonl").open()]
    assert steps == sorted(set(steps)) == [2, 4, 6, 8, 10, 12]


def test_dropout_rng_is_restored(tmp_path):
    class DropLM(TinyLM):
        def forward(self, ids, targets=None, kv_cache=None):
            h = nn.functional.dropout(self.norm(self.emb(ids)), 0.3, self.training)
            logits = self.head(h)
            return logits, nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())

    def go(path, c, resume=None):
        torch.manual_seed(0)
        m = DropLM()
        train(m, LMObjective(), CycleSource(), c, run_dir=path, resume=resume)
        return m

    full = go(tmp_path / "a", cfg(max_steps=8, schedule="constant"))
    go(tmp_path / "b", cfg(max_steps=4, schedule="constant"))
    ck = find_resume_checkpoint(tmp_path / "b")
    resumed = go(tmp_path / "b", cfg(max_steps=8, schedule="constant"), ck)
    assert all(torch.equal(a, b) for a, b in zip(full.parameters(), resumed.parameters()))


class NaNAt:
    """LM objective whose loss is NaN at the given (1-based) steps."""

    def __init__(self, bad_steps):
        self.bad, self.calls = set(bad_steps), 0

    def compute_loss(self, model, batch):
        self.calls += 1
        out = LMObjective().compute_loss(model, batch)
        if self.calls in self.bad:
            out.loss_sum = out.loss_sum * float("nan")
        return out


def test_nan_steps_are_skipped_and_counted(tmp_path):
    torch.manual_seed(0)
    model = TinyLM()
    c = cfg(max_steps=1, save_every=0, warmup=0)
    train(model, NaNAt({1}), CycleSource(), c, run_dir=None)
    torch.manual_seed(0)
    ref = TinyLM()
    assert all(torch.equal(a, b) for a, b in zip(ref.parameters(), model.parameters()))

    model, res = run(tmp_path, cfg(max_steps=10, log_every=1), objective=NaNAt({3, 4}))
    assert res.nan_skipped == 2 and math.isfinite(res.train_loss)
    recs = [json.loads(x) for x in (tmp_path / "metrics.jsonl").open()]
    assert [r["nan_skipped"] for r in recs][:5] == [0, 0, 1, 2, 2]
    assert recs[2]["loss"] is None  # the window held only the skipped step


def test_nan_guard_saves_and_stops(tmp_path):
    with pytest.raises(LmforgeError, match="NaN/inf for 3 steps in a row") as e:
        run(tmp_path, cfg(max_steps=20, nan_guard_patience=3), objective=NaNAt({6, 7, 8, 9}))
    assert "step 8" in str(e.value)
    assert latest_checkpoint(tmp_path).name == "step_8"
    ck = find_resume_checkpoint(tmp_path)
    assert ck.state["nan_consecutive"] == 3 and ck.state["nan_skipped"] == 3


def test_grad_accumulation_matches_a_larger_batch(tmp_path):
    big, _ = run(tmp_path / "a", cfg(batch_size=8, save_every=0), source=CycleSource(8))

    class Halves(CycleSource):
        """Hands out the same 8-row batches as two halves of 4."""

        def __init__(self):
            super().__init__(8)
            self.pending = None

        def next_batch(self):
            if self.pending is None:
                x, y = super().next_batch()
                self.pending = (x[4:], y[4:])
                return x[:4], y[:4]
            out, self.pending = self.pending, None
            return out

    small, _ = run(tmp_path / "b", cfg(batch_size=4, grad_accum=2, save_every=0), source=Halves())
    for a, b in zip(big.parameters(), small.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


def test_stateful_objective_state_is_checkpointed(tmp_path):
    class Counting(LMObjective):
        def __init__(self):
            self.seen = torch.zeros(())

        def compute_loss(self, model, batch):
            self.seen += 1
            return super().compute_loss(model, batch)

        def state_dict(self):
            return {"seen": self.seen.clone()}

        def load_state_dict(self, state):
            self.seen = state["seen"].clone()

    run(tmp_path, cfg(max_steps=4, grad_accum=2), objective=Counting())
    obj = Counting()
    _, res = run(
        tmp_path,
        cfg(max_steps=6, grad_accum=2),
        objective=obj,
        resume=find_resume_checkpoint(tmp_path),
    )
    assert res.step == 6 and obj.seen.item() == 12


def test_time_budget_stops_the_run(tmp_path):
    c = cfg(max_steps=None, max_time=1.0, save_every=0, schedule="cosine")
    _, res = run(tmp_path, c)
    assert res.stop_reason == "max_time" and res.elapsed_s >= 1.0 and res.step > 2
    lrs = [json.loads(x)["lr"] for x in (tmp_path / "metrics.jsonl").open()]
    assert lrs[-1] < 0.5 * max(lrs)  # the cosine ran on elapsed time


def test_token_budget(tmp_path):
    _, res = run(tmp_path, cfg(max_steps=None, max_tokens=4 * 8 * 5, save_every=0))
    assert res.step == 5 and res.stop_reason == "max_tokens"
