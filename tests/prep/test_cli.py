"""``espcn-lab prep`` end to end on a tiny ImageNet tree with bad and odd files, and on a local HF set."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from espcn_lab.cli import main
from espcn_lab.imaging.colour import rgb_to_y
from espcn_lab.imaging.degrade import degrade, modcrop
from espcn_lab.imaging.read import read_image
from espcn_lab.shards.format import decode_pair, read_manifest

GOOD = 8  # good JPEGs per class, 2 classes


def _photo(rng, h, w):
    small = rng.uniform(0, 255, (h // 6 + 2, w // 6 + 2, 3))
    return np.clip(np.kron(small, np.ones((6, 6, 1)))[:h, :w] + rng.normal(0, 5, (h, w, 3)), 0, 255).astype(np.uint8)


@pytest.fixture
def imagenet(tmp_path):
    """train/<wnid>/*.JPEG with odd-but-valid and broken files (their expected skip reasons below)."""
    rng = np.random.default_rng(7)
    root = tmp_path / "imagenet"
    for wnid in ("n01440764", "n01443537"):
        (root / "train" / wnid).mkdir(parents=True)
        for i in range(GOOD):
            Image.fromarray(_photo(rng, 80 + 4 * i, 110)).save(root / "train" / wnid / f"{wnid}_{i}.JPEG", quality=90)
    odd = root / "train" / "n01443537"
    Image.fromarray(_photo(rng, 90, 90)).convert("CMYK").save(odd / "cmyk.JPEG")
    Image.fromarray(rgb_to_y(_photo(rng, 90, 90)).astype(np.uint16) * 257).save(odd / "wide16.png")
    Image.fromarray(np.dstack([_photo(rng, 90, 90), np.full((90, 90), 100, np.uint8)])).save(odd / "alpha.png")
    good = (odd / "n01443537_0.JPEG").read_bytes()
    (odd / "empty.JPEG").write_bytes(b"")
    (odd / "text.JPEG").write_bytes(b"not an image\n")
    (odd / "truncated.JPEG").write_bytes(good[: len(good) // 2])
    Image.fromarray(_photo(rng, 40, 40)).save(odd / "small.JPEG")
    Image.fromarray(_photo(rng, 300, 300)).save(odd / "bomb.png")  # over --max-pixels 80000
    (odd / "synset_notes.txt").write_text("ignored: not an image extension")
    return root


SKIPS = {"decompression_bomb": 1, "empty": 1, "not_an_image": 1, "too_small": 1, "truncated": 1}


def _prep(*args, expect=0):
    try:
        main(["prep", "--no-progress", *map(str, args)])
    except SystemExit as exit:
        assert exit.code == expect, f"exit {exit.code}"
        return
    assert expect == 0


def _hashes(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.tar"))}


def test_imagenet_tree_counts_determinism_and_webdataset(imagenet, tmp_path, capsys):
    common = ["--imagenet-dir", imagenet, "--scale", 3, "--val-images", 2, "--images-per-shard", 5, "--max-pixels", 80_000]
    _prep("--out", tmp_path / "a", "--workers", 2, *common)
    _prep("--out", tmp_path / "b", "--workers", 1, *common)
    assert _hashes(tmp_path / "a") == _hashes(tmp_path / "b") and len(_hashes(tmp_path / "a")) == 6
    err = capsys.readouterr().err
    assert err.count("warning: skipped") == 2 * sum(SKIPS.values()) and "truncated.JPEG: truncated" in err
    manifest = read_manifest(tmp_path / "a")
    listed = 2 * GOOD + 3 + len(SKIPS)
    assert manifest["counts"] == {"listed": listed, "ignored_files": 1, "selected": listed,
                                  "used": listed - len(SKIPS), "skipped": SKIPS}
    assert manifest["degradation"] == {"kind": "bicubic", "sigma": None} and manifest["stride"] == 14
    train = manifest["splits"]["train"]
    assert [s["name"] for s in train["shards"]] == [f"train-{k:06d}.tar" for k in range(5)]
    assert all(s["sha256"] == _hashes(tmp_path / "a")[s["name"]] for s in train["shards"])
    urls = [str(tmp_path / "a" / s["name"]) for s in train["shards"]]
    samples = list(wds.WebDataset(urls, shardshuffle=False).decode())
    assert len(samples) == train["samples"] and sum(len(s["lq.npy"]) for s in samples) == train["pairs"]
    for sample in samples:
        lq, gt = decode_pair(sample)
        meta = sample["json"]
        assert lq.dtype == np.uint8 and lq.shape[1:] == (17, 17) and gt.shape[1:] == (51, 51)
        px = modcrop(read_image(imagenet / "train" / meta["source"]).pixels, 3)
        hr = px if px.ndim == 2 else rgb_to_y(px)  # a grey JPEG's values are its luma, as eval scores it
        y, x = meta["positions"][-1]
        assert np.array_equal(gt[-1], hr[3 * y:3 * y + 51, 3 * x:3 * x + 51])
        assert np.array_equal(lq[-1], degrade(hr, 3)[y:y + 17, x:x + 17])


def test_mismatched_folder_is_refused_unless_overwrite(imagenet, tmp_path, capsys):
    args = ["--imagenet-dir", imagenet, "--out", tmp_path / "o", "--num-images", 6, "--workers", 1]
    _prep(*args, "--scale", 2)
    _prep(*args, "--scale", 3, expect=2)
    assert "made with other arguments (scale: 2 -> 3)" in capsys.readouterr().err
    _prep(*args, "--scale", 3, "--overwrite")
    assert read_manifest(tmp_path / "o")["scale"] == 3


@pytest.mark.parametrize("args,message", [
    (["--image-dir", "/no/such/folder"], "image folder not found"),
    (["--image-dir", "{data}", "--scale", "1"], "--scale must be"),
    (["--image-dir", "{data}", "--imagenet-dir", "{data}"], "exactly one source"),
    (["--image-dir", "{data}", "--part", "3/2"], "--part 3/2"),
    (["--image-dir", "{data}", "--sigma", "1.0"], "--sigma only applies"),
    (["--image-dir", "{data}", "--num-images", "1000"], "lists only"),
    (["--image-dir", "{data}", "--hr-scales", "1,2"], "--hr-scales: factors must be in (0, 1]"),
    (["--image-dir", "{data}", "--hr-scales", "half"], "--hr-scales expects comma-separated numbers"),
])
def test_argument_errors_are_one_line(imagenet, tmp_path, capsys, args, message):
    _prep("--out", tmp_path / "o", *[a.format(data=imagenet) for a in args], expect=2)
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_hr_scales_are_recorded_and_resume_checks_them(imagenet, tmp_path, capsys):
    args = ["--imagenet-dir", imagenet, "--out", tmp_path / "s", "--num-images", 6, "--workers", 1]
    _prep(*args)
    plain = read_manifest(tmp_path / "s")
    _prep(*args, "--hr-scales", "1,0.8", expect=2)
    assert "hr_scales: None -> [1.0, 0.8]" in capsys.readouterr().err
    _prep(*args, "--hr-scales", "1,0.8", "--out", tmp_path / "t")
    _prep(*args, "--hr-scales", "1,0.8", "--out", tmp_path / "t")  # the same arguments resume
    assert "(1 already done)" in capsys.readouterr().out
    manifest = read_manifest(tmp_path / "t")
    assert plain["hr_scales"] is None and manifest["hr_scales"] == [1.0, 0.8]
    assert manifest["splits"]["train"]["pairs"] > plain["splits"]["train"]["pairs"]
    sample = next(iter(wds.WebDataset(str(tmp_path / "t" / "train-000000.tar"), shardshuffle=False).decode()))
    assert sample["json"]["hr_scales"] == [1.0, 0.8] and len(sample["json"]["positions"][0]) == 3


def test_parts_build_one_dataset(imagenet, tmp_path):
    common = ["--imagenet-dir", imagenet, "--out", tmp_path / "p", "--images-per-shard", 4, "--workers", 1]
    _prep(*common, "--part", "1/2")
    assert not (tmp_path / "p" / "manifest.json").exists() and (tmp_path / "p" / ".prep" / "part-1-of-2.json").exists()
    _prep(*common, "--part", "0/2")
    manifest = read_manifest(tmp_path / "p")
    _prep("--imagenet-dir", imagenet, "--out", tmp_path / "whole", "--images-per-shard", 4, "--workers", 1)
    assert _hashes(tmp_path / "p") == _hashes(tmp_path / "whole")
    assert manifest["splits"] == read_manifest(tmp_path / "whole")["splits"]


def _cli(args, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "espcn_lab.cli", "prep", "--no-progress", *map(str, args)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs)


def test_resume_after_kill_gives_the_same_shards(tmp_path):
    rng = np.random.default_rng(3)
    for i in range(24):
        Image.fromarray(_photo(rng, 240, 240)).save(tmp_path / f"{i:02d}.png")
    args = ["--image-dir", tmp_path, "--images-per-shard", 2, "--workers", 1, "--scale", 2]
    _prep(*args, "--out", tmp_path / "ref")
    proc = _cli([*args, "--out", tmp_path / "killed"])
    deadline = time.time() + 60
    while not (tmp_path / "killed" / "train-000000.tar").exists() and time.time() < deadline:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = _hashes(tmp_path / "killed")
    assert not (tmp_path / "killed" / "manifest.json").exists() and 0 < len(partial) < 12
    assert all(_hashes(tmp_path / "ref")[name] == digest for name, digest in partial.items())  # no half shard
    out, _ = _cli([*args, "--out", tmp_path / "killed"]).communicate(timeout=120)
    assert f"({len(partial)} already done)" in out.decode()
    assert _hashes(tmp_path / "killed") == _hashes(tmp_path / "ref")
    assert not list((tmp_path / "killed").glob(".*.tmp"))


def test_local_hf_imagefolder_streaming_and_not(tmp_path):
    rng = np.random.default_rng(5)
    (tmp_path / "hf" / "train").mkdir(parents=True)
    for i in range(6):
        Image.fromarray(_photo(rng, 70, 90)).save(tmp_path / "hf" / "train" / f"{i}.png")
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf_home")}
    args = ["prep", "--no-progress", "--hf-dataset", str(tmp_path / "hf"), "--workers", "2", "--images-per-shard", "4"]
    script = ("import sys; from espcn_lab.cli import main\n"  # one interpreter (offline env) for both runs
              "for out, extra in (('map', []), ('stream', ['--hf-streaming'])):\n"
              "    try: main([*sys.argv[2:], '--out', sys.argv[1] + '/' + out, *extra])\n"
              "    except SystemExit as e: assert not e.code, e.code\n")
    proc = subprocess.run([sys.executable, "-c", script, str(tmp_path), *args], env=env, capture_output=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert _hashes(tmp_path / "map") == _hashes(tmp_path / "stream") and len(_hashes(tmp_path / "map")) == 2
    manifest = read_manifest(tmp_path / "map")
    assert manifest["counts"]["used"] == 6 and manifest["source"]["kind"] == "hf"


@pytest.mark.slow
def test_all_of_t91(shared_data, tmp_path):
    _prep("--image-dir", shared_data / "T91", "--out", tmp_path / "t91", "--scale", 3)
    manifest = read_manifest(tmp_path / "t91")
    assert manifest["counts"]["listed"] == manifest["counts"]["used"] == 91 and not manifest["counts"]["skipped"]
    samples = list(wds.WebDataset(str(tmp_path / "t91" / "train-000000.tar"), shardshuffle=False).decode())
    assert len(samples) == 91 and sum(len(s["lq.npy"]) for s in samples) == manifest["splits"]["train"]["pairs"]


def test_overwrite_deletes_only_what_prep_wrote(imagenet, tmp_path, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "train-photos.tar").write_bytes(b"the user's own archive")
    (out / "manifest.json").write_text('{"mine": true}')
    _prep("--imagenet-dir", imagenet, "--out", out, "--num-images", 6, "--workers", 1, expect=2)
    assert "already holds shards not made by this prep" in capsys.readouterr().err
    _prep("--imagenet-dir", imagenet, "--out", out, "--num-images", 6, "--workers", 1, "--overwrite")
    _prep("--imagenet-dir", imagenet, "--out", out, "--num-images", 6, "--workers", 1, "--scale", 2, "--overwrite")
    assert (out / "train-photos.tar").read_bytes() == b"the user's own archive"
    assert read_manifest(out)["scale"] == 2 and sorted(p.name for p in out.glob("train-0*.tar")) == ["train-000000.tar"]


def test_a_full_disk_is_one_line_and_keeps_what_was_finished(tmp_path, tiny_disk, shared_data):
    proc = subprocess.run([sys.executable, "-m", "espcn_lab.cli", "prep", "--image-dir", str(shared_data / "T91"),
                           "--out", str(tiny_disk / "s"), "--images-per-shard", "10", "--no-progress"],
                          capture_output=True, text=True, timeout=120)  # it once hung in Pool.terminate
    lines = [line for line in proc.stderr.splitlines() if not line.startswith("warning")]
    assert proc.returncode == 1 and len(lines) == 1 and "No space left on device" in lines[0] and "rerun" in lines[0]
    assert not [p for p in (tiny_disk / "s").iterdir() if p.name.startswith(".") and p.name != ".prep"]
    for shard in (tiny_disk / "s").glob("train-*.tar"):  # whatever finished is whole
        assert list(wds.WebDataset(str(shard), shardshuffle=False).decode())


def test_greyscale_sources_train_on_the_luma_eval_scores_them_on(tmp_path, shared_data):
    """A dark greyscale photo's pairs hold its own grey values (down to 0), which is what ``eval`` scores; the old
    ``--grey bt601`` (luma 16-235, no training pixel below 16) stays available and is recorded in the manifest."""
    rgb = read_image(shared_data / "T91" / "t1.png").pixels
    grey = (rgb.astype(np.float64).mean(2) * 0.4).astype(np.uint8)  # a dark photo: most pixels below luma 16...
    grey[:8] = 255  # ...and a white band
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.fromarray(grey).save(folder / "dark.png")
    for policy in ("values", "bt601"):
        extra = [] if policy == "values" else ["--grey", policy]
        _prep("--image-dir", folder, "--out", tmp_path / policy, "--scale", 2, "--workers", 1, *extra)
        manifest = read_manifest(tmp_path / policy)
        assert manifest["grey"] == policy
        (sample,) = wds.WebDataset([str(tmp_path / policy / "train-000000.tar")], shardshuffle=False).decode()
        gt = decode_pair(sample)[1]
        y, x = sample["json"]["positions"][0]
        hr = modcrop(grey, 2)
        want = hr if policy == "values" else rgb_to_y(np.repeat(hr[..., None], 3, 2))
        assert np.array_equal(gt[0], want[2 * y:2 * y + 34, 2 * x:2 * x + 34])
        lo, hi = int(gt.min()), int(gt.max())
        assert (lo < 16 and hi == 255) if policy == "values" else (lo >= 16 and hi == 235)
    _prep("--image-dir", folder, "--out", tmp_path / "bad", "--grey", "rgb", expect=2)
