"""Loop hooks: calls in order, a frozen model on the device, checkpointed state, rollouts."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
from test_train_loop import CycleSource, LMObjective, TinyLM, cfg

from lmforge.common import LmforgeError
from lmforge.runs.checkpoint import find_resume_checkpoint
from lmforge.train.causal_lm import CausalLMObjective
from lmforge.train.hooks import LoopHook, LoopView, StepRecord
from lmforge.train.loop import train


class Crash(Exception):
    pass


class SteeredSource(CycleSource):
    """CycleSource whose sequences are shifted by `offset`, which a hook sets before each step."""

    offset = 0

    def next_batch(self):
        x, y = super().next_batch()
        return (x + self.offset) % self.v, (y + self.offset) % self.v


class Steering(LoopHook):
    """Counts its calls, buffers every step's loss, steers the data from its own generator,
    and holds a frozen copy of the initial model on the training device."""

    def __init__(self, source: SteeredSource, crash_before: int | None = None):
        self.source, self.crash_before = source, crash_before
        self.g = torch.Generator().manual_seed(7)
        self.calls = {"on_start": 0, "before_step": 0, "after_step": 0}
        self.buffer = torch.zeros(0, dtype=torch.float64)
        self.ref = None

    def on_start(self, loop: LoopView) -> None:
        self.calls["on_start"] += 1
        assert isinstance(loop.model, TinyLM) and loop.world_size == 1 and loop.rank == 0
        assert loop.cfg.max_steps == 8 and loop.run_dir is not None
        # A reference model beside the live one, on the loop's device, out of the optimizer.
        self.ref = copy.deepcopy(loop.model).to(loop.device).requires_grad_(False).eval()
        self.ref_init = [p.clone() for p in self.ref.parameters()]

    def before_step(self, loop: LoopView) -> None:
        if loop.step == self.crash_before:
            raise Crash  # as a kill: nothing after the last checkpoint survives
        self.calls["before_step"] += 1
        assert self.calls["before_step"] == loop.step + 1
        assert all(p.grad is None for p in loop.model.parameters())
        self.source.offset = int(torch.randint(0, 16, (1,), generator=self.g))

    def after_step(self, loop: LoopView, record: StepRecord) -> None:
        self.calls["after_step"] += 1
        assert record.step == loop.step == self.calls["after_step"]
        assert record.logged is not None and record.logged["step"] == record.step  # log_every=1
        loss = (record.loss_sum / record.n_tokens_global).double().reshape(1)
        self.buffer = torch.cat([self.buffer, loss])

    def state_dict(self):
        return {"calls": dict(self.calls), "g": self.g.get_state(), "buffer": self.buffer.clone()}

    def load_state_dict(self, state):
        self.calls = dict(state["calls"])
        self.g.set_state(state["g"])
        self.buffer = state["buffer"].clone()


def run(path, hook_args=(), *, resume=None, seed=0, hooks=None):
    torch.manual_seed(seed)
    model = TinyLM()
    source = SteeredSource()
    hooks = [Steering(source, *hook_args)] if hooks is None else hooks
    c = cfg(max_steps=8, save_every=4, log_every=1)
    train(model, LMObjective(), source, c, run_dir=path, resume=resume, hooks=hooks)
    return model, hooks


def test_hook_state_resumes_exactly(tmp_path):
    full, (hf,) = run(tmp_path / "a")
    assert hf.calls == {"on_start": 1, "before_step": 8, "after_step": 8}
    assert len(hf.buffer) == 8 and torch.isfinite(hf.buffer).all()
    # The frozen reference stayed as it was; the live model trained.
    assert all(torch.equal(a, b) for a, b in zip(hf.ref.parameters(), hf.ref_init, strict=True))
    assert not torch.equal(full.head.weight, hf.ref.head.weight)

    with pytest.raises(Crash):
        run(tmp_path / "b", (6,))  # dies before step 7: checkpoint 4 is the latest
    ck = find_resume_checkpoint(tmp_path / "b")
    assert ck.step == 4 and "hooks.pt" in ck.state["files"]  # size and sha256 verified
    resumed, (hr,) = run(tmp_path / "b", resume=ck, seed=123)
    assert hr.calls == {"on_start": 2, "before_step": 8, "after_step": 8}
    assert torch.equal(hr.buffer, hf.buffer)
    for a, b in zip(full.parameters(), resumed.parameters(), strict=True):
        assert torch.equal(a, b)

    # Without the hook's state (here: without the hook) the run could not continue exactly.
    with pytest.raises(LmforgeError, match="loop hook"):
        run(tmp_path / "b", resume=find_resume_checkpoint(tmp_path / "b"), hooks=[])


class RolloutSource:
    """Batches that a hook pushes; reading one that was not pushed is an error."""

    def __init__(self):
        self.queue = []

    def push(self, batch):
        self.queue.append(batch)

    def next_batch(self):
        assert self.queue, "no rollout was made before this step"
        return self.queue.pop(0)

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


class Rollout(LoopHook):
    """Generates continuations of its prompts with the live model before every step and
    feeds them as the step's batch; the loss covers the generated tokens only."""

    def __init__(self, source: RolloutSource, prompts: list[list[int]], new_tokens: int = 6):
        self.source, self.prompts, self.new_tokens = source, prompts, new_tokens
        self.generated, self.weights = [], []

    def before_step(self, loop: LoopView) -> None:
        from lmforge.inference.engine import generate
        from lmforge.inference.sampling import SamplingConfig

        model = loop.model
        self.weights.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
        model.eval()
        try:
            new = generate(model, self.prompts, SamplingConfig(max_new_tokens=self.new_tokens,
                           temperature=1.0, seed=0), pad_id=0)  # fmt: skip
        finally:
            model.train()
        self.generated.append(new)
        width = max(len(p) + len(g) for p, g in zip(self.prompts, new, strict=True)) - 1
        x = torch.zeros(len(new), width, dtype=torch.long)
        y = torch.full((len(new), width), -100, dtype=torch.long)
        for i, (p, g) in enumerate(zip(self.prompts, new, strict=True)):
            row = torch.tensor(p + g)
            x[i, : len(row) - 1] = row[:-1]
            y[i, len(p) - 1 : len(row) - 1] = row[len(p) :]  # targets: the generated tokens
        self.source.push((x, y))


def test_a_rollout_hook_generates_with_the_live_model_and_feeds_the_batches():
    from lmforge.models import build_model, get_preset

    _, mc = get_preset("tiny", "llama")
    torch.manual_seed(0)
    model = build_model("llama", dataclasses.replace(mc, vocab_size=32, block_size=32))
    source = RolloutSource()
    prompts = [[1, 5, 9], [1, 7], [1, 11, 12, 13], [1]]
    hook = Rollout(source, prompts)
    c = cfg(max_steps=4, save_every=0, log_every=1, lr=3e-2)
    res = train(model, CausalLMObjective(), source, c, run_dir=None, hooks=[hook])
    assert res.step == 4 and not source.queue
    assert len(hook.generated) == 4 and all(len(g) == 6 for gen in hook.generated for g in gen)
    # Each rollout saw the weights the previous step had just updated.
    assert all(not torch.equal(a, b) for a, b in zip(hook.weights, hook.weights[1:]))
    # Same sampler seed, changed model: the rollouts changed as it trained.
    assert hook.generated[0] != hook.generated[-1]
    # Only the generated tokens were trained on, and counted.
    assert res.tokens_seen == 4 * len(prompts) * 6
