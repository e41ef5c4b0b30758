"""``upscale`` under hostile input and faults: it never overwrites an input, never leaves a half file under
a final name, never deletes a file it did not write, reads every image the one way, refuses bombs."""

from __future__ import annotations

import os

import numpy as np
import pytest
from _cli import run_cli
from PIL import Image

from tests._models import save_model


@pytest.fixture(scope="module")
def model_x2(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("m") / "x2.safetensors", scale=2, features=(8, 4))


def _image(path, rng, shape=(12, 10, 3)):
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(path)
    return path


@pytest.mark.parametrize("how", ["same file", "folder into itself", "hard link"])
def test_an_output_that_is_an_input_is_refused_and_nothing_changes(model_x2, tmp_path, rng, capsys, how):
    a = _image(tmp_path / "a.png", rng)
    before = a.read_bytes()
    if how == "same file":
        argv = ["upscale", model_x2, a, "-o", a]
    elif how == "folder into itself":
        argv = ["upscale", model_x2, tmp_path, "-o", f"{tmp_path}/"]
    else:
        os.link(a, tmp_path / "link.png")
        argv = ["upscale", model_x2, a, "-o", tmp_path / "link.png"]
    code, _, err = run_cli(argv, capsys)
    assert code == 2 and "is the input" in err and len(err.strip().splitlines()) == 1
    assert a.read_bytes() == before


def test_a_failed_write_keeps_the_file_that_was_there(model_x2, tmp_path, rng, capsys):
    keep = tmp_path / "keep.jpg"
    keep.write_text("data")  # not ours: must survive a write that fails (RGBA cannot be a JPEG)
    code, _, err = run_cli(["upscale", model_x2, _image(tmp_path / "rgba.png", rng, (8, 8, 4)), "-o", keep], capsys)
    assert code == 1 and "cannot write" in err and keep.read_text() == "data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.jpg", "rgba.png"]


def test_a_full_disk_leaves_no_half_file(model_x2, tmp_path, rng, capsys, tiny_disk):
    big = _image(tmp_path / "big.png", rng, (300, 300, 3))  # x2 output ~ 700 KB of noise: cannot fit 256 KiB
    (tiny_disk / "big.png").write_bytes(b"old")
    code, _, err = run_cli(["upscale", model_x2, big, "-o", tiny_disk / "big.png"], capsys)
    assert code == 1 and "No space left on device" in err
    assert os.listdir(tiny_disk) == ["big.png"] and (tiny_disk / "big.png").read_bytes() == b"old"


def test_a_failing_write_leaves_no_half_file_anywhere(model_x2, tmp_path, rng, capsys, monkeypatch):
    a = _image(tmp_path / "a.png", rng)

    def fail(self, fp, *args, **kwargs):
        open(fp, "wb").write(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Image.Image, "save", fail)
    out = tmp_path / "out"
    code, _, err = run_cli(["upscale", model_x2, a, "-o", f"{out}/"], capsys)
    assert code == 1 and "No space left on device" in err and list(out.iterdir()) == []


def test_output_folder_forms_and_refused_kinds(model_x2, tmp_path, rng, capsys):
    a = _image(tmp_path / "a.png", rng)
    for form in (f"{tmp_path}/new1/", str(tmp_path / "new2")):  # a trailing slash, or no extension: a folder
        code, out, _ = run_cli(["upscale", model_x2, a, "-o", form], capsys)
        assert code == 0 and (tmp_path / form.rstrip("/").split("/")[-1] / "a.png").is_file()
    code, _, err = run_cli(["upscale", model_x2, a, "-o", tmp_path / "a.mp4"], capsys)
    assert code == 2 and "is a video" in err
    clip = tmp_path / "c.mkv"
    clip.write_bytes(b"\x1aE\xdf\xa3")  # refused by name before it is even opened
    code, _, err = run_cli(["upscale", model_x2, clip, "-o", tmp_path / "c.png"], capsys)
    assert code == 2 and "is a video; write it as a video" in err


def test_16_bit_grey_is_scaled_not_clipped(model_x2, tmp_path, rng, capsys):
    grey = rng.integers(0, 256, (10, 12), dtype=np.uint8)
    Image.fromarray(grey).save(tmp_path / "g8.png")
    Image.fromarray(grey.astype(np.uint16) * 257).save(tmp_path / "g16.png")
    code, _, _ = run_cli(["upscale", model_x2, tmp_path / "g8.png", tmp_path / "g16.png", "-o", tmp_path / "out"], capsys)
    g8, g16 = (np.asarray(Image.open(tmp_path / "out" / n)) for n in ("g8.png", "g16.png"))
    assert code == 0 and g16.shape == (20, 24) and np.array_equal(g8, g16)


def test_bombs_and_animations_fail_alone_and_the_batch_goes_on(model_x2, tmp_path, rng, capsys):
    src = tmp_path / "in"
    src.mkdir()
    _image(src / "good.png", rng)
    Image.new("L", (12_001, 12_000)).save(src / "bomb.png")  # 144 megapixels of zeros: a few KB on disk
    frames = [Image.new("RGB", (8, 8), (i * 60, 0, 0)) for i in range(3)]
    frames[0].save(src / "anim.gif", save_all=True, append_images=frames[1:])
    code, out, err = run_cli(["upscale", model_x2, src, "-o", tmp_path / "out"], capsys)
    assert code == 1 and (tmp_path / "out" / "good.png").is_file()
    assert "exceeds 89478485 pixels" in err and "animated or multi-page image (3 frames)" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["good.png"]
