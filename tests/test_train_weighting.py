"""Token-weighted losses: every trained token weighs the same across micro-batches and processes.

Batches here have targets with uneven numbers of -100 (masked) tokens, as masked
SFT has. The step's gradient must equal that of the mean loss over all unmasked
tokens of the step, however they are split into micro-batches (grad_accum) or
processes (DDP); tokens_seen counts only unmasked tokens.

Run as a script under torchrun, this file is the DDP worker of
`test_ddp_uneven_ranks_match_one_process`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torch.optim.optimizer import register_optimizer_step_pre_hook

from lmforge.train.causal_lm import CausalLMObjective
from lmforge.train.config import TrainConfig
from lmforge.train.loop import train

V, T = 16, 8


class TinyLM(nn.Module):
    """Embedding → norm → head; the mean cross-entropy over targets that are not -100."""

    def __init__(self, d: int = 16):
        super().__init__()
        self.emb = nn.Embedding(V, d)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, V)

    def forward(self, ids, targets=None, kv_cache=None):
        logits = self.head(self.norm(self.emb(ids)))
        loss = None
        if targets is not None:
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss


def micro_batch(i: int, rows: int, unmasked_per_row: int):
    """`rows` rows of length T whose targets keep only the last `unmasked_per_row` positions."""
    g = torch.Generator().manual_seed(1000 + i)
    x = torch.randint(0, V, (rows, T), generator=g)
    y = torch.randint(0, V, (rows, T), generator=g)
    y[:, : T - unmasked_per_row] = -100
    return x, y


# Micro-batches with 1, 4 and 8 unmasked targets per row (2, 8 and 16 tokens): weighting each
# micro-batch equally would give each of the first batch's tokens 8 times the weight of the last's.
UNEVEN = [micro_batch(0, 2, 1), micro_batch(1, 2, 4), micro_batch(2, 2, 8)]
# Two processes × two micro-batches, uneven within and across ranks (10 vs 32 tokens).
RANKS = [[micro_batch(3, 2, 1), micro_batch(4, 2, 4)], [micro_batch(5, 2, 8), micro_batch(6, 2, 8)]]


def n_unmasked(batches) -> int:
    return sum(int((y != -100).sum()) for _, y in batches)


def union(batches):
    return torch.cat([x for x, _ in batches]), torch.cat([y for _, y in batches])


class ListSource:
    """Hands out `batches` in order, round and round."""

    def __init__(self, batches):
        self.batches, self.pos = list(batches), 0

    def next_batch(self):
        b = self.batches[self.pos % len(self.batches)]
        self.pos += 1
        return b

    def state_dict(self):
        return {"pos": self.pos}

    def load_state_dict(self, state):
        self.pos = state["pos"]


def cfg(**kw) -> TrainConfig:
    base = dict(
        batch_size=2,
        max_steps=1,
        lr=1e-2,
        min_lr=1e-3,
        warmup=0,
        grad_clip=0.0,  # the raw (scaled) gradient reaches the optimizer
        eval_every=0,
        save_every=0,
        log_every=1,
        dtype="fp32",
        device="cpu",
        threads=1,
        parallel="none",
    )
    base.update(kw)
    return TrainConfig(**base)


def loop_gradient(batches, c: TrainConfig, seed: int = 0) -> tuple[dict, object]:
    """The gradient the loop hands the optimizer in its first step, and the loop's result."""
    torch.manual_seed(seed)
    model = TinyLM()
    seen = {}

    def grab(opt, args, kwargs):
        if not seen:
            seen.update({n: p.grad.detach().clone() for n, p in model.named_parameters()})

    handle = register_optimizer_step_pre_hook(grab)
    try:
        res = train(model, CausalLMObjective(), ListSource(batches), c, run_dir=None)
    finally:
        handle.remove()
    return seen, res


def reference_gradient(batches, seed: int = 0) -> dict:
    """d(mean loss over every unmasked token of `batches`)/dθ, by plain autograd."""
    torch.manual_seed(seed)
    model = TinyLM()
    x, y = union(batches)
    model(x, y)[1].backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def rel_diff(a: dict, b: dict) -> float:
    da = torch.cat([a[k].flatten() for k in sorted(a)])
    db = torch.cat([b[k].flatten() for k in sorted(a)])
    return float((da - db).norm() / db.norm())


def test_uneven_micro_batches_match_one_batch():
    ref = reference_gradient(UNEVEN)
    accum, _ = loop_gradient(UNEVEN, cfg(grad_accum=3))
    whole, _ = loop_gradient([union(UNEVEN)], cfg(batch_size=6))
    assert rel_diff(accum, ref) <= 1e-6
    assert rel_diff(whole, ref) <= 1e-6
    assert rel_diff(accum, whole) <= 1e-6
    # The old rule (each micro-batch's mean / grad_accum) is measurably different here.
    per_batch = [reference_gradient([b]) for b in UNEVEN]
    equal = {k: sum(g[k] for g in per_batch) / 3 for k in ref}
    assert rel_diff(equal, ref) > 1e-2


def test_tokens_seen_and_the_logged_loss_count_unmasked_tokens(tmp_path):
    n = n_unmasked(UNEVEN)  # 26 of the 48 target positions
    assert n == 26
    torch.manual_seed(0)
    model = TinyLM()
    with torch.no_grad():
        first_loss = model(*union(UNEVEN))[1].item()
    res = train(model, CausalLMObjective(), ListSource(UNEVEN), cfg(grad_accum=3, max_steps=3),
                run_dir=tmp_path)  # fmt: skip
    assert res.tokens_seen == 3 * n
    recs = [json.loads(x) for x in (tmp_path / "metrics.jsonl").open()]
    assert [r["tokens_seen"] for r in recs] == [n, 2 * n, 3 * n]
    # The logged loss of step 1 is the token-weighted mean at the initial weights.
    assert abs(recs[0]["loss"] - first_loss) <= 1e-6 * first_loss
    ck = json.loads((tmp_path / "checkpoints/step_3/trainer_state.json").read_text())
    assert ck["tokens_seen"] == 3 * n
    # A token budget counts trained tokens too: 2 steps hold 52 of them.
    _, res = loop_gradient(UNEVEN, cfg(grad_accum=3, max_steps=None, max_tokens=2 * n))
    assert res.step == 2 and res.stop_reason == "max_tokens" and res.tokens_seen == 2 * n


def test_mean_loss_weighs_tokens_not_batches():
    from lmforge.eval.perplexity import mean_loss

    torch.manual_seed(0)
    model = TinyLM()
    loss, count = mean_loss(model, CausalLMObjective(), UNEVEN, device="cpu")
    with torch.no_grad():
        whole = model(*union(UNEVEN))[1].item()
    assert count == 26 and abs(loss - whole) <= 1e-6 * whole


def test_a_step_without_trained_tokens_changes_nothing():
    empty = [(x, torch.full_like(y, -100)) for x, y in UNEVEN[:1]]
    torch.manual_seed(0)
    model = TinyLM()
    before = [p.detach().clone() for p in model.parameters()]
    res = train(model, CausalLMObjective(), ListSource(empty), cfg(weight_decay=0.0),
                run_dir=None)  # fmt: skip
    assert res.tokens_seen == 0 and res.nan_skipped == 0
    # Zero gradients: AdamW's update is 0 / (0 + eps) = 0.
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


@pytest.mark.parametrize("parallel", ["ddp", pytest.param("fsdp", marks=pytest.mark.slow)])
def test_ddp_uneven_ranks_match_one_process(tmp_path, parallel):
    """DDP and FSDP2 average gradients over processes; the loop's scale must undo that."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           __file__, str(tmp_path), parallel]  # fmt: skip
    # start_new_session: a timeout kills the launcher and both workers together.
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                          start_new_session=True) as p:  # fmt: skip
        try:
            _, err = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            raise
    assert p.returncode == 0, err[-3000:]
    everything = RANKS[0] + RANKS[1]
    ref = reference_gradient(everything)
    one, res = loop_gradient([union(everything)], cfg(batch_size=8))
    assert rel_diff(one, ref) <= 1e-6
    for rank in (0, 1):
        out = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert rel_diff(out["grad"], ref) <= 1e-6, rank
        assert out["tokens_seen"] == res.tokens_seen == n_unmasked(everything) == 42


def _ddp_worker(out_dir: Path, parallel: str) -> None:
    """One torchrun process: 2 micro-batches of this rank's uneven batches, gradient saved."""
    from lmforge.train import distributed as D

    rank = int(os.environ["RANK"])
    c = cfg(grad_accum=2, parallel=parallel)
    ctx = D.init_distributed("cpu", parallel)
    torch.manual_seed(0)
    model = TinyLM()
    seen = {}

    def grab(opt, args, kwargs):
        if not seen:  # FSDP2: each process holds a shard (a DTensor); gather the whole
            full = {n: getattr(p.grad, "full_tensor", p.grad.detach) for n, p in
                    model.named_parameters()}  # fmt: skip
            seen.update({n: f().detach().clone() for n, f in full.items()})

    register_optimizer_step_pre_hook(grab)
    res = train(model, CausalLMObjective(), ListSource(RANKS[rank]), c, run_dir=None, ctx=ctx)
    torch.save({"grad": seen, "tokens_seen": res.tokens_seen}, out_dir / f"rank{rank}.pt")
    D.shutdown()


if __name__ == "__main__":
    torch.set_num_threads(1)
    _ddp_worker(Path(sys.argv[1]), sys.argv[2])
