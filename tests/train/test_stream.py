"""Training stream: shuffled batches, the pool, flips/rotations on the device, equal epochs, the DataModule."""

import itertools

import numpy as np
import pytest
import torch

from espcn_lab.config import load_config
from espcn_lab.errors import UserError
from espcn_lab.imaging.degrade import DegradationSpec
from espcn_lab.shards.locate import resolve_shards
from espcn_lab.train.augment import DihedralAugment, dihedral_index
from espcn_lab.train.datamodule import ShardDataModule, ValidationImages
from espcn_lab.train.pool import PairPool, shuffled_batches
from espcn_lab.train.stream import BackgroundBatches, train_loader, train_pipeline


def test_shuffled_batches_yield_every_pair_once_and_mix_sources():
    stacks = [(np.full((10, 17, 17), i, np.uint8), np.full((10, 51, 51), i, np.uint8)) for i in range(20)]
    batches = list(shuffled_batches(iter(stacks), 8, 50, [0]))
    lq = torch.cat([b[0] for b in batches])
    assert batches[0][0].shape == (8, 1, 17, 17) and batches[0][1].shape == (8, 1, 51, 51)
    assert batches[0][0].dtype == torch.uint8 and len(lq) == 200
    assert sorted(lq[:, 0, 0, 0].tolist()) == sorted(list(range(20)) * 10)
    assert len(set(batches[0][0][:, 0, 0, 0].tolist())) > 2  # one batch draws from several images
    gt_ids = torch.cat([b[1] for b in batches])[:, 0, 0, 0]
    assert torch.equal(gt_ids, lq[:, 0, 0, 0])  # pairs stay paired


def test_pool_draws_uniformly_from_its_slots_and_refills_them_from_the_queue():
    pool = PairPool(4, np.random.default_rng(0))
    pool.add(np.arange(10, dtype=np.uint8)[:, None], np.arange(10, dtype=np.uint8)[:, None])
    assert pool.filled == 4 and pool.staged == 6 and pool.ready(6) and not pool.ready(7)
    a, b = pool.take(3)
    assert np.array_equal(a, b) and len(set(a[:, 0])) == 3 and set(a[:, 0]) <= {0, 1, 2, 3}
    assert sorted(pool.lq[:, 0]) == sorted({0, 1, 2, 3} - set(a[:, 0]) | {4, 5, 6})  # slots refilled in order
    assert pool.staged == 3 and np.array_equal(pool.lq, pool.gt)
    rest, _ = pool.drain()
    assert sorted(np.concatenate([a, rest])[:, 0]) == list(range(10)) and pool.filled == pool.staged == 0
    # queued stacks are not copied (read-only views of a mapped shard are fine); a take spans several
    pool = PairPool(4, np.random.default_rng(1))
    stacks = [np.arange(i, i + 3, dtype=np.uint8)[:, None] for i in range(0, 12, 3)]
    for x in stacks:
        x.flags.writeable = False
        pool.add(x, x)
    assert pool.staged == 8 and len(pool.queue) == 3 and np.shares_memory(pool.queue[0][0], stacks[1])
    a, b = pool.take(4)  # every slot, refilled from the rest of stacks[1] and the start of stacks[2]
    assert np.array_equal(a, b) and sorted(a[:, 0]) == [0, 1, 2, 3] and sorted(pool.lq[:, 0]) == [4, 5, 6, 7]
    assert pool.staged == 4 and len(pool.queue) == 2 and pool.offset == 2
    rest, _ = pool.drain()
    assert sorted(np.concatenate([a, rest])[:, 0]) == list(range(12))
    # each take draws uniformly from the pool: a pair waits ~capacity pairs on average, memorylessly
    ids = np.arange(20000, dtype=np.int32)[:, None, None]
    out = np.concatenate([b[0][:, 0, 0, 0].numpy() for b in shuffled_batches(
        ((ids[i:i + 7], ids[i:i + 7]) for i in range(0, 20000, 7)), 10, 100, [3])])
    assert sorted(out) == list(range(20000))
    wait = (np.argsort(out) - np.arange(20000))[:19000] + 100  # pairs that arrived while j waited
    assert 80 < wait.std() < 120  # geometric waits (std ~ capacity); a block shuffle would give ~29
    assert 0.10 < (wait > 200).mean() < 0.17  # P(wait > 2 capacities) = e^-2 = 0.135


def test_dihedral_augment_keeps_lq_and_gt_aligned_and_covers_all_eight_transforms():
    index = dihedral_index(3, 3)
    grid = torch.arange(9).view(3, 3)
    seen = {tuple(grid.reshape(-1)[i].tolist()) for i in index}
    expected = {tuple(torch.rot90(g, k, (0, 1)).reshape(-1).tolist()) for g in (grid, grid.T) for k in range(4)}
    assert seen == expected and len(seen) == 8
    lq = torch.randint(0, 255, (256, 1, 5, 5), dtype=torch.uint8)
    gt = lq.repeat_interleave(3, 2).repeat_interleave(3, 3)
    out_lq, out_gt = DihedralAugment(seed=1)(lq, gt)
    assert torch.equal(out_gt[:, :, 1::3, 1::3], out_lq) and out_lq.dtype == torch.uint8
    changed = (out_lq != lq).flatten(1).any(1).float().mean()
    assert 0.75 < changed < 0.95  # 7 of 8 transforms change a random patch
    again, _ = DihedralAugment(seed=1)(lq, gt)
    assert torch.equal(again, out_lq)  # seeded


def test_every_rank_and_worker_gets_the_same_number_of_batches(shards):
    urls, _ = resolve_shards(str(shards))
    seen = []
    for rank in range(3):  # 3 ranks x 2 workers over 4 shards: some readers resample
        loader = train_loader(train_pipeline(urls, 16, shuffle_buffer=64, rank=rank, world_size=3), 2, 5)
        for epoch in range(2):
            batches = list(loader)
            assert len(batches) == 5 and all(b[0].shape == (16, 1, 17, 17) for b in batches)
            seen.append(torch.cat([b[0] for b in batches]))
    assert not torch.equal(seen[0], seen[1])  # a new epoch is a new draw
    assert not torch.equal(seen[0], seen[2])  # ranks differ


def test_in_process_loader_reads_in_a_background_thread_in_order(shards):
    import threading
    urls, _ = resolve_shards(str(shards))
    loader = train_loader(train_pipeline(urls, 16, shuffle_buffer=64), 0, 5)
    assert isinstance(loader, BackgroundBatches)
    epochs = [list(loader) for _ in range(2)]
    assert [len(e) for e in epochs] == [5, 5]
    plain = train_loader(train_pipeline(urls, 16, shuffle_buffer=64), 0, 5).source  # the same stream, no thread
    for threaded, direct in zip(epochs, [list(plain) for _ in range(2)]):
        assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(threaded, direct))

    def failing():
        yield 1
        raise OSError("disk gone")
    with pytest.raises(OSError, match="disk gone"):
        list(BackgroundBatches(failing()))
    it = iter(BackgroundBatches(itertools.count(), depth=2))
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()  # the consumer stops early: the reader thread ends too
    assert not any(t.name == "espcn-lab-batches" and t.is_alive() for t in threading.enumerate())


def test_datamodule_reads_degradation_and_rejects_bad_input(shards, tmp_path, shared_data):
    cfg = load_config("configs/smoke.yaml", [f"data.train_shards={shards}", f"data.val_dirs.Set5={shared_data / 'Set5'}"])
    dm = ShardDataModule(cfg)
    assert dm.degradation == DegradationSpec("gaussian", 1.0) and dm.batches_per_epoch(2) == 16
    (tmp_path / "empty").mkdir()
    for override, message in [(f"data.val_dirs.Set5={tmp_path / 'empty'}", "no images"),
                              ("model.scale=2", "shards are x3"), ("data.train_shards=/nope/x", "no shards")]:
        with pytest.raises(UserError, match=message):
            ShardDataModule(load_config("configs/smoke.yaml", [f"data.train_shards={shards}", override]))


def test_validation_images_follow_the_protocol(shared_data):
    val = ValidationImages({"Set5": str(shared_data / "Set5")}, 3, DegradationSpec(), 1)
    name, pair = val[0]  # baby 512x512 -> modcrop 510
    assert len(val) == 5 and name == "Set5" and pair.name == "baby"
    assert pair.lq.shape == (170, 170) and pair.gt_y.shape == (510, 510)
    rgb = ValidationImages({"Set5": str(shared_data / "Set5")}, 3, DegradationSpec(), 3)
    assert rgb[0][1].lq.shape == (170, 170, 3)


@pytest.mark.parametrize("workers", [0, 1])
def test_the_stream_ends_with_one_line_when_no_shard_gives_a_pair(tmp_path, shards, workers):
    """Shards read as they come (pipe:, URLs: not checked before training) that are empty or garbage end the stream
    within a pass instead of looping forever; from a reader process too, as one line."""
    import os
    import tarfile
    import threading

    from espcn_lab.shards.reader import ShardStreamError

    tarfile.open(tmp_path / "empty.tar", "w").close()
    (tmp_path / "garbage.tar").write_bytes(os.urandom(5000))
    urls = [f"pipe:cat {tmp_path / 'empty.tar'}", f"pipe:cat {tmp_path / 'garbage.tar'}", str(tmp_path / "empty.tar")]
    box = {}

    def consume():
        try:
            list(train_loader(train_pipeline(urls, 8, shuffle_buffer=16), workers, 3))
        except Exception as err:  # noqa: BLE001 - checked below
            box["error"] = err

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    thread.join(60)
    assert not thread.is_alive(), "the stream is still looking for a pair"
    err = box.get("error")
    assert isinstance(err, ShardStreamError) and "\n" not in str(err) and str(err).startswith("no training pair"), err
    good, _ = resolve_shards(str(shards))  # one good shard among them: batches come
    assert len(list(train_loader(train_pipeline(urls + good[:1], 8, shuffle_buffer=16), 0, 3))) == 3
