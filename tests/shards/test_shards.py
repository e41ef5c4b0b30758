"""The on-disk contract: every spelling of data.train_shards, the fast reader against WebDataset's own,
the images prep held out."""

import io

import numpy as np
import pytest
import webdataset as wds

from espcn_lab.errors import UserError
from espcn_lab.shards.format import decode_pair, npy_bytes
from espcn_lab.shards.locate import held_out_images, resolve_shards
from espcn_lab.shards.reader import (
    npy_from_bytes,
    read_stacks,
    sample_metadata,
    tar_members,
)


def test_every_spelling_of_train_shards_finds_the_same_files(shards):
    urls, manifest = resolve_shards(str(shards))
    assert len(urls) == 4 and manifest["scale"] == 3
    assert resolve_shards(str(shards / "train-*.tar"))[0] == urls
    assert resolve_shards(str(shards / "train-{000000..000003}.tar"))[0] == urls
    assert resolve_shards([urls[0], urls[1]])[0] == urls[:2]
    assert resolve_shards(f"pipe:cat {urls[0]}") == ([f"pipe:cat {urls[0]}"], None)
    with pytest.raises(UserError, match="no shards found"):
        resolve_shards(str(shards / "nope-*.tar"))
    with pytest.raises(UserError, match="empty"):
        resolve_shards("")


def test_fast_reader_matches_webdataset_decode(shards):
    urls, _ = resolve_shards(str(shards))
    ours = list(read_stacks({"url": u} for u in urls))
    theirs = [decode_pair(s) for s in wds.DataPipeline(wds.SimpleShardList(urls), wds.tarfile_to_samples())]
    assert len(ours) == len(theirs) == 8
    for (lq, gt), (lq2, gt2) in zip(ours, theirs):
        assert lq.shape[1:] == (17, 17) and gt.shape[1:] == (51, 51)
        assert np.array_equal(lq, lq2) and np.array_equal(gt, gt2)
    with open(urls[0], "rb") as f:  # chunk boundaries anywhere (inside headers, payloads, padding) change nothing
        whole = [(n, bytes(p)) for n, p in tar_members(f)]
    for chunk in (700, 1024, 4099):
        with open(urls[0], "rb") as f:
            assert [(n, bytes(p)) for n, p in tar_members(f, chunk=chunk)] == whole
    data = open(urls[0], "rb").read()
    with pytest.raises(EOFError, match="truncated"):
        list(tar_members(io.BytesIO(data[:len(data) // 2 + 7]), chunk=1000))
    piped = list(read_stacks([{"url": f"pipe:cat {urls[0]}"}]))
    assert np.array_equal(piped[0][0], ours[0][0])
    rgb = np.arange(24, dtype=np.uint8).reshape(2, 2, 2, 3)
    assert np.array_equal(npy_from_bytes(npy_bytes(rgb)), rgb)




def test_held_out_images_are_the_val_samples_source_files(tmp_path):
    from PIL import Image

    from data_prep import PrepOptions, run_prep

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(5):
        Image.new("RGB", (80, 70), (40 * i, 20, 200)).save(photos / f"p{i}.png")
    run_prep(PrepOptions(out=tmp_path / "s", scale=3, image_dir=photos, val_images=2, workers=1, progress=False))
    held = held_out_images(tmp_path / "s")
    refs = [m["source"] for m in sample_metadata(str(tmp_path / "s" / "val-000000.tar"))]
    assert len(held) == 2 and [p.name for p in held] == refs and all(p.parent == photos for p in held)
    (photos / refs[0]).unlink()
    with pytest.raises(UserError, match="held-out source image"):
        held_out_images(tmp_path / "s")
