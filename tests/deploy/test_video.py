"""Video: streaming upscale keeps frame count, rate and audio; lossless output equals per-frame upscaling."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from PIL import Image

from espcn_lab.checkpoint import load_model
from espcn_lab.cli import main
from espcn_lab.deploy.infer import Upscaler
from espcn_lab.deploy.video import iter_frames, upscale_video
from tests._media import write_clip
from tests._models import save_model

av = pytest.importorskip("av")


@pytest.fixture(scope="module")
def tiny_x2(tmp_path_factory):
    return save_model(tmp_path_factory.mktemp("m") / "tiny_x2.safetensors", scale=2, features=(8, 4))


@pytest.fixture(scope="module")
def clip_with_audio(tmp_path_factory):
    """10 frames of 32x24 at 30000/1001 fps with an AAC track."""
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(10)]
    return write_clip(tmp_path_factory.mktemp("v") / "clip.mkv", frames, pix_fmt="bgr0",
                      rate=Fraction(30000, 1001), audio=True)


def _summary(path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        frames = sum(1 for _ in c.decode(v))
        return frames, v.average_rate, (v.codec_context.width, v.codec_context.height), len(c.streams.audio)


@pytest.mark.parametrize("ext", ["mp4", "mkv", "mov"])
def test_cli_keeps_count_rate_and_audio(tiny_x2, clip_with_audio, tmp_path, ext, capsys):
    out = tmp_path / f"up.{ext}"
    with pytest.raises(SystemExit) as exit_:
        main(["upscale", str(tiny_x2), str(clip_with_audio), "-o", str(out), "--batch", "3", "--no-progress"])
    assert exit_.value.code == 0
    assert _summary(out) == (10, Fraction(30000, 1001), (64, 48), 1)
    with av.open(str(out)) as c, av.open(str(clip_with_audio)) as src:
        assert sum(p.size > 0 for p in c.demux(c.streams.audio[0])) == sum(p.size > 0 for p in src.demux(src.streams.audio[0]))


def test_y4m_round_trip(tiny_x2, clip_with_audio, tmp_path):
    up = Upscaler(load_model(str(tiny_x2)).model, backend="torch")
    done = upscale_video(clip_with_audio, tmp_path / "up.y4m", up, 2, progress=False)
    assert done["audio_dropped"] == ["aac"]  # y4m holds no audio: reported, not fatal
    assert _summary(tmp_path / "up.y4m")[:3] == (10, Fraction(30000, 1001), (64, 48))
    assert upscale_video(tmp_path / "up.y4m", tmp_path / "up2.mp4", up, 2, progress=False)["frames"] == 10


def test_lossless_output_equals_frame_by_frame(tiny_x2, shared_data, tmp_path):
    src = [f[200:264, 300:380] for f in iter_frames(shared_data / "Vid4" / "calendar.mkv")]
    assert len(src) == 8
    clip = tmp_path / "crop.mkv"
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 80, 64, "bgr0"
        for i, rgb in enumerate(src):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    up = Upscaler(load_model(str(tiny_x2)).model, backend="torch")
    upscale_video(clip, tmp_path / "up.mkv", up, 2, batch=3, codec="ffv1", progress=False)
    got = list(iter_frames(tmp_path / "up.mkv"))
    # the same batches of 3 the pipeline ran (oneDNN may round a rare tie differently at another batch size)
    want = [f for start in range(0, 8, 3) for f in up(np.stack(src[start:start + 3]))]
    assert len(got) == 8 and all(np.array_equal(g, w) for g, w in zip(got, want))


def test_frame_folder_iterates_like_the_video(shared_data, tmp_path):
    frames = list(iter_frames(shared_data / "Vid4" / "city.mkv"))[:3]
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"{i:04d}.png")
    assert all(np.array_equal(a, b) for a, b in zip(iter_frames(tmp_path), frames))


def test_unreadable_video_is_one_line(tiny_x2, tmp_path, capsys):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00" * 100)
    with pytest.raises(SystemExit) as exit_:
        main(["upscale", str(tiny_x2), str(bad), "-o", str(tmp_path / "o.mp4")])
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert "broken.mp4" in err and "Traceback" not in err


def test_eval_scores_a_video_as_the_mean_over_its_frames(tiny_x2, shared_data, tmp_path):
    from espcn_lab.evaluate.run import evaluate

    frames = [f[100:196, 200:296] for f in iter_frames(shared_data / "Vid4" / "walk.mkv")][:4]
    clip, folder = tmp_path / "walk.mkv", tmp_path / "walk_frames"
    folder.mkdir()
    with av.open(str(clip), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = 96, 96, "bgr0"
        for i, rgb in enumerate(frames):
            Image.fromarray(rgb).save(folder / f"{i:03d}.png")
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    result = evaluate(str(tiny_x2), {"video": str(clip), "frames": str(folder)}, device="cpu")["datasets"]
    assert len(result["video"]["images"]) == 4
    assert result["video"]["model"]["psnr_y"] == pytest.approx(result["frames"]["model"]["psnr_y"], abs=1e-9)


def test_preset_reaches_x264_and_is_refused_elsewhere(tiny_x2, clip_with_audio, tmp_path):
    from espcn_lab.errors import UserError

    up = Upscaler(load_model(str(tiny_x2)).model, device="cpu")
    done = upscale_video(clip_with_audio, tmp_path / "fast.mp4", up, 2, preset="ultrafast", progress=False)
    assert done["frames"] == 10 and done["codec"] == "libx264"
    with pytest.raises(UserError, match="preset"):
        upscale_video(clip_with_audio, tmp_path / "x.mkv", up, 2, codec="ffv1", preset="fast", progress=False)
    with pytest.raises(UserError, match="encoding failed"):
        upscale_video(clip_with_audio, tmp_path / "bad.mp4", up, 2, preset="no-such-preset", progress=False)


def test_a_fork_from_another_thread_after_decoding_does_not_hang(shared_data):
    """PyAV 18.1.1 keeps one swscale context per thread; with slice threads, a child forked from another thread
    (a DataLoader started off the main thread, a threaded test runner) froze freeing the decoding thread's copy.
    Run in a fresh interpreter so no earlier test's state decides it."""
    import subprocess
    import sys

    script = """
import os, sys, threading, time
from espcn_lab.deploy.video import iter_frames
assert sum(1 for _ in iter_frames(sys.argv[1])) > 0
box = {}
def fork():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    for _ in range(200):
        if os.waitpid(pid, os.WNOHANG)[0]:
            box["exited"] = True
            return
        time.sleep(0.05)
    os.kill(pid, 9)
thread = threading.Thread(target=fork)
thread.start()
thread.join()
sys.exit(0 if box.get("exited") else 3)
"""
    run = subprocess.run([sys.executable, "-c", script, str(shared_data / "Vid4" / "calendar.mkv")], timeout=120)
    assert run.returncode == 0, "the forked child did not exit within 10 s"
