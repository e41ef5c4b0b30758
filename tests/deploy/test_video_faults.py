"""Video upscaling under faults: no half video under a final name (failures, a full disk, kill -9), damaged
or empty inputs said so with a non-zero exit, no wait without end, a bad file fails alone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from _cli import run_cli
from PIL import Image

from tests._models import save_model

av = pytest.importorskip("av")


@pytest.fixture(scope="module")
def model_x2(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("m") / "x2.safetensors", scale=2, features=(8, 4))


def _clip(path, frames=30, size=(48, 64), codec="ffv1"):
    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=25)
        stream.height, stream.width = size
        stream.pix_fmt = "yuv420p"
        for i in range(frames):
            rgb = np.random.default_rng(i).integers(0, 256, (*size, 3), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def _frames(path):
    with av.open(str(path)) as c:
        return sum(1 for _ in c.decode(video=0))


def test_a_video_is_never_written_over_itself(model_x2, tmp_path, capsys):
    clip = _clip(tmp_path / "in.mkv")
    before = clip.read_bytes()
    code, _, err = run_cli(["upscale", model_x2, clip, "-o", clip, "--no-progress"], capsys)
    assert code == 2 and "is the input" in err and clip.read_bytes() == before


def test_a_truncated_video_is_written_as_far_as_it_decodes_and_said_so(model_x2, tmp_path, capsys):
    data = _clip(tmp_path / "full.mkv").read_bytes()
    (tmp_path / "cut.mkv").write_bytes(data[: len(data) * 4 // 10])
    code, _, err = run_cli(["upscale", model_x2, tmp_path / "cut.mkv", "-o", tmp_path / "out.mkv", "--no-progress"], capsys)
    got = _frames(tmp_path / "out.mkv")
    assert code == 1 and 0 < got < 30 and f"only {got} of 30 frames could be decoded" in err and "1 incomplete" in err


def test_an_empty_video_writes_nothing(model_x2, tmp_path, capsys):
    empty = tmp_path / "empty.mkv"  # its header (a 64x48 stream of 1.2 s) and no frame after it
    empty.write_bytes(_clip(tmp_path / "whole.mkv").read_bytes()[:600])
    (tmp_path / "whole.mkv").unlink()
    code, _, err = run_cli(["upscale", model_x2, empty, "-o", tmp_path / "out.mkv", "--no-progress"], capsys)
    assert code == 1 and "no video frame could be decoded; nothing written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mkv"]


def test_a_bad_video_fails_alone_in_a_batch(model_x2, tmp_path, capsys):
    src = tmp_path / "in"
    src.mkdir()
    (src / "broken.mkv").write_bytes(b"\x1aE\xdf\xa3 not a matroska file at all" * 50)
    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(src / "photo.png")
    code, _, err = run_cli(["upscale", model_x2, src, "-o", tmp_path / "out", "--no-progress"], capsys)
    assert code == 1 and "broken.mkv: cannot open as video" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["photo.png"]


def test_a_fifo_named_like_a_video_is_refused_at_once(model_x2, tmp_path, capsys):
    os.mkfifo(tmp_path / "live.mkv")
    start = time.monotonic()
    code, _, err = run_cli(["upscale", model_x2, tmp_path / "live.mkv", "-o", tmp_path / "o.mkv"], capsys)
    assert code == 1 and "not a regular file" in err and time.monotonic() - start < 30


def test_a_full_disk_mid_stream_ends_with_one_line_and_no_half_file(model_x2, tmp_path, tiny_disk):
    clip = _clip(tmp_path / "big.mkv", frames=40, size=(120, 160))  # ~8 MB of lossless x2 output: cannot fit
    (tiny_disk / "big.mkv").write_bytes(b"old")
    proc = subprocess.run([sys.executable, "-m", "espcn_lab.cli", "upscale", str(model_x2), str(clip), "-o",
                           str(tiny_disk / "big.mkv"), "--codec", "ffv1", "--no-progress"],
                          capture_output=True, text=True, timeout=120)  # a hang would fail here
    assert proc.returncode == 1 and "No space left on device" in proc.stderr
    assert os.listdir(tiny_disk) == ["big.mkv"] and (tiny_disk / "big.mkv").read_bytes() == b"old"


def test_kill_9_mid_video_leaves_nothing_under_the_final_name(model_x2, tmp_path):
    clip = _clip(tmp_path / "long.mkv", frames=400, size=(96, 128))
    out = tmp_path / "out" / "long_x2.mkv"
    proc = subprocess.Popen([sys.executable, "-m", "espcn_lab.cli", "upscale", str(model_x2), str(clip), "-o", str(out),
                             "--codec", "ffv1", "--no-progress", "--batch", "1"], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(p.name.startswith(".long_x2") for p in out.parent.glob(".*")):
        time.sleep(0.05)
    time.sleep(0.3)  # well into the stream
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert not out.exists() and any(p.name.startswith(".long_x2.mkv.partial-") for p in out.parent.iterdir())
