"""BatchReader: shapes, determinism, resume equality, rank sharding, sequential continuity.

The data folder here stores token i at stream position i, so every window names
its own start: x[b, 0] is where row b read from.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_data_helpers import make_position_folder

from lmforge.common import LmforgeError
from lmforge.data.batches import BatchReader


@pytest.fixture
def data(tmp_path):
    # Small shard files so that many windows cross a file boundary.
    return make_position_folder(tmp_path / "d", {"train": 10_007, "val": 1_000}, shard_tokens=777)


def take(reader, n):
    return [reader.next_batch() for _ in range(n)]


def starts(batches):
    return [x[:, 0].tolist() for x, _ in batches]


@pytest.mark.parametrize("mode", ["random", "sequential"])
def test_shapes_and_targets(data, mode):
    x, y = BatchReader(data, "train", 4, 16, seed=0, mode=mode).next_batch()
    assert x.shape == y.shape == (4, 16) and x.dtype == y.dtype == torch.int64
    assert x.is_contiguous() and y.is_contiguous()
    assert torch.equal(y, x + 1)  # positions: the target is the next token
    assert torch.equal(x[:, 1:], x[:, :1] + torch.arange(1, 16))  # contiguous windows


def test_random_mode_is_seeded(data):
    a = starts(take(BatchReader(data, "train", 4, 16, seed=7), 5))
    b = starts(take(BatchReader(data, "train", 4, 16, seed=7), 5))
    c = starts(take(BatchReader(data, "train", 4, 16, seed=8), 5))
    assert a == b and a != c


def test_random_epoch_visits_distinct_non_overlapping_windows(data):
    t, reader = 16, BatchReader(data, "train", 5, 16, seed=1)
    n_windows = (10_007 - t) // t  # one window kept free for the epoch's offset
    assert reader.steps_per_epoch == n_windows // 5
    first = np.concatenate(starts(take(reader, reader.steps_per_epoch)))
    assert len(set(first.tolist())) == len(first) == reader.steps_per_epoch * 5
    assert len(set((first % t).tolist())) == 1  # one grid per epoch
    assert np.all(np.diff(np.sort(first)) >= t)  # never overlapping
    assert first.max() + t + 1 <= 10_007
    second = np.concatenate(starts(take(reader, reader.steps_per_epoch)))
    assert first[0] % t != second[0] % t  # this seed's next epoch shifts the grid
    assert not np.array_equal(first, second)
    assert reader.epoch == 2.0


@pytest.mark.parametrize("mode", ["random", "sequential"])
def test_resume_yields_exactly_the_same_batches(data, mode):
    full = BatchReader(data, "train", 3, 32, seed=5, mode=mode)
    expected = take(full, 40)
    part = BatchReader(data, "train", 3, 32, seed=5, mode=mode)
    take(part, 17)
    state = json.loads(json.dumps(part.state_dict()))  # survives trainer_state.json
    resumed = BatchReader(data, "train", 3, 32, seed=5, mode=mode)
    resumed.load_state_dict(state)
    for (x, y), (ex, ey) in zip(take(resumed, 23), expected[17:]):
        assert torch.equal(x, ex) and torch.equal(y, ey)


@pytest.mark.parametrize("mode", ["random", "sequential"])
@pytest.mark.parametrize("world", [2, 3])
def test_ranks_split_the_one_process_batch(data, mode, world):
    b, t = 2, 16
    single = take(BatchReader(data, "train", world * b, t, seed=3, mode=mode), 30)
    ranks = [
        take(BatchReader(data, "train", b, t, seed=3, rank=r, world_size=world, mode=mode), 30)
        for r in range(world)
    ]
    for step, (sx, sy) in enumerate(single):
        xs = [ranks[r][step][0] for r in range(world)]
        assert torch.equal(torch.cat(xs), sx)  # union in rank order == one process
        assert torch.equal(torch.cat([ranks[r][step][1] for r in range(world)]), sy)
        firsts = torch.cat(xs)[:, 0].tolist()
        assert len(set(firsts)) == len(firsts)  # no two ranks read the same window


def test_resume_under_another_world_size_with_the_same_global_batch(data):
    one = BatchReader(data, "train", 4, 16, seed=2)
    take(one, 9)
    state = one.state_dict()
    expected = one.next_batch()[0]
    halves = []
    for r in range(2):
        reader = BatchReader(data, "train", 2, 16, seed=2, rank=r, world_size=2)
        reader.load_state_dict(state)
        halves.append(reader.next_batch()[0])
    assert torch.equal(torch.cat(halves), expected)


def test_sequential_rows_continue_their_text(data):
    reader = BatchReader(data, "train", 4, 16, seed=0, mode="sequential")
    k = reader.steps_per_epoch
    prev = reader.next_batch()
    assert not reader.continues_previous
    stretch_starts = prev[0][:, 0]
    assert torch.all(torch.diff(stretch_starts) == reader.stretch)  # one stretch per row
    for _ in range(k - 1):
        x, y = reader.next_batch()
        assert reader.continues_previous
        assert torch.equal(x[:, 0], prev[1][:, -1])  # picks up right after the last target
        prev = (x, y)
    reader.next_batch()  # a new epoch: rows jump back, hidden state must be reset
    assert not reader.continues_previous
    assert reader.step == k + 1


def test_eval_batches_are_fixed_and_cover_the_split(data):
    reader = BatchReader(data, "val", 4, 16, seed=0)
    a, b = list(reader.eval_batches()), list(reader.eval_batches())
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, b)) and len(a) == len(b)
    firsts = torch.cat([x[:, 0] for x, _ in a]).tolist()
    assert firsts == list(range(0, (1000 - 1) // 16 * 16, 16))  # every window once, in order
    assert len(list(reader.eval_batches(3))) == 3
    assert reader.step == 0  # evaluation does not move the training position


@pytest.mark.parametrize("world, kept", [(2, 62), (3, 60)])
def test_eval_ranks_get_equal_batches_that_match_one_process(data, world, kept):
    single = [x for x, _ in BatchReader(data, "val", 2 * world, 16, seed=0).eval_batches()]
    ranks = []
    for r in range(world):
        reader = BatchReader(data, "val", 2, 16, seed=0, rank=r, world_size=world)
        ranks.append([x for x, _ in reader.eval_batches()])
    for step in zip(*ranks, strict=True):  # same number of batches on every rank ...
        assert len({x.shape for x in step}) == 1  # ... and the same sizes
    union = torch.cat([torch.cat(step) for step in zip(*ranks)])
    assert union[:, 0].tolist() == list(range(0, kept * 16, 16))  # 62 windows; 3 ranks drop 2
    assert torch.equal(union, torch.cat(single)[:kept])  # the one-process windows, in order


def test_seq_len_longer_than_the_split_is_a_clear_error(data):
    with pytest.raises(LmforgeError, match="has 1,000 tokens, fewer than seq_len \\+ 1 = 1001"):
        BatchReader(data, "val", 1, 1000, seed=0)
    with pytest.raises(LmforgeError, match="too few for 64 sequential rows"):
        BatchReader(data, "val", 64, 32, seed=0, mode="sequential")


def test_state_from_other_settings_is_refused(data):
    state = BatchReader(data, "train", 4, 16, seed=0).state_dict()
    with pytest.raises(LmforgeError, match="seq_len is 16 in the saved state but 32"):
        BatchReader(data, "train", 4, 32, seed=0).load_state_dict(state)
    with pytest.raises(LmforgeError, match="batch_size × world_size"):
        BatchReader(data, "train", 8, 16, seed=0).load_state_dict(state)


def test_tiny_split_still_yields_batches(tmp_path):
    folder = make_position_folder(tmp_path / "t", {"train": 40})
    reader = BatchReader(folder, "train", 8, 8, seed=0)  # 4 windows, 8 rows: rows repeat
    x, _ = reader.next_batch()
    firsts = x[:, 0]
    assert x.shape == (8, 8) and len(set((firsts % 8).tolist())) == 1
    assert len(set(firsts.tolist())) == 4 and int(firsts.max()) + 9 <= 40
