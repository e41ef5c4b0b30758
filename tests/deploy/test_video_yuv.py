"""The YUV-native video path on CPU: yuv420p planes from decoder to encoder, no RGB anywhere; the RGB path
where a format needs it (RGB codecs, odd sizes, full range, other devices)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch

from espcn_lab.checkpoint import load_model
from espcn_lab.deploy.infer import Upscaler
from espcn_lab.deploy.ops import bicubic_upsample
from espcn_lab.deploy.video import iter_frames, upscale_video
from espcn_lab.evaluate.metrics import psnr_y
from espcn_lab.imaging.colour import hr_luma
from espcn_lab.imaging.degrade import degrade, modcrop
from tests._media import write_clip
from tests._models import make_model, save_model

av = pytest.importorskip("av")
pytest.importorskip("numba", reason="numba not installed: video keeps the RGB path")


@pytest.fixture(scope="module")
def tiny_x2(tmp_path_factory):
    return load_model(str(save_model(tmp_path_factory.mktemp("m") / "x2.safetensors", scale=2, features=(8, 4)))).model


def _planes(path):
    """Every frame of a video as PyAV's yuv420p ndarray (Y rows, then U, then V), and the stream's rate."""
    with av.open(str(path)) as c:
        rate = c.streams.video[0].average_rate
        return [f.to_ndarray(format="yuv420p") for f in c.decode(video=0)], rate


def _y(plane_frames):
    return [f[: f.shape[0] * 2 // 3] for f in plane_frames]


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_the_kernel_writes_the_network_output_rounded_and_bicubic_chroma(scale, rng):
    model, _ = make_model(scale, features=(8, 4))
    up = Upscaler(model, device="cpu")
    b, h, w = 2, 10, 14
    lq = rng.integers(0, 256, (b, h * 3 // 2, w), dtype=np.uint8)
    out = up.yuv420p_runner(h, w)(lq)
    big_h, big_w, n, c = h * scale, w * scale, h * w, h * w // 4
    assert out.shape == (b, big_h * 3 // 2, big_w) and out.dtype == np.uint8
    flat, got = lq.reshape(b, -1), out.reshape(b, -1)
    with torch.no_grad():
        net = model(torch.from_numpy(flat[:, :n].reshape(b, 1, h, w).astype(np.float32) / 255))
    want_y = torch.floor(net.clamp(0, 1) * 255 + 0.5).numpy()[:, 0]
    diff = np.abs(got[:, : big_h * big_w].reshape(b, big_h, big_w).astype(int) - want_y)
    assert diff.max() <= 1 and (diff > 0).mean() < 1e-3  # exact here; one level allowed for a rounding tie
    for k in range(2):  # U, V: MATLAB bicubic of the LR plane, rounded
        plane = torch.from_numpy(flat[:, n + k * c: n + (k + 1) * c].reshape(b, 1, h // 2, w // 2).astype(np.float32))
        want = torch.floor(bicubic_upsample(plane, scale) + 0.5).clamp(0, 255).numpy()[:, 0]
        start = big_h * big_w + k * c * scale**2
        diff = np.abs(got[:, start:start + c * scale**2].reshape(want.shape).astype(int) - want)
        assert diff.max() <= 1 and (diff > 0).mean() < 1e-3


def test_yuv_path_output_matches_the_rgb_path_on_vid4(shared_data, tmp_path):
    """calendar (8 frames, 720x576) at x3 with the shipped model, LR made by the protocol and stored as lossless
    yuv420p: both paths into lossless yuv420p (.y4m), each scored against the HR frames' Y."""
    scale = 3
    hr = [modcrop(f, scale) for f in iter_frames(shared_data / "Vid4" / "calendar.mkv")]
    src = write_clip(tmp_path / "lr.mkv", [degrade(f, scale) for f in hr])
    up = Upscaler(load_model("x3").model, device="cpu")
    yuv = upscale_video(src, tmp_path / "yuv.y4m", up, scale, progress=False, yuv=up.yuv420p_runner)
    rgb = upscale_video(src, tmp_path / "rgb.y4m", up, scale, progress=False)
    assert (yuv["frame_path"], rgb["frame_path"]) == ("yuv420p", "rgb24")
    (got_yuv, rate_yuv), (got_rgb, rate_rgb) = _planes(tmp_path / "yuv.y4m"), _planes(tmp_path / "rgb.y4m")
    assert len(got_yuv) == len(got_rgb) == 8 and rate_yuv == rate_rgb == 25
    assert got_yuv[0].shape == (576 * 3 // 2, 720)
    between = np.mean([psnr_y(a, b) for a, b in zip(_y(got_yuv), _y(got_rgb))])
    assert between >= 45  # 45.5 dB here: the RGB path reads PyAV's yuv -> rgb24 about one grey level dark
    gt = [hr_luma(f) for f in hr]
    score_yuv = np.mean([psnr_y(a, g, scale) for a, g in zip(_y(got_yuv), gt)])
    score_rgb = np.mean([psnr_y(a, g, scale) for a, g in zip(_y(got_rgb), gt)])
    assert score_yuv >= score_rgb - 0.05  # 22.447 vs 22.431 dB here
    bias = (np.stack(_y(got_yuv)).astype(float) - np.stack(gt)).mean()
    assert abs(bias) < 0.25  # -0.02 here: no range or level shift (the RGB path: -1.02)


def test_yuv_path_keeps_count_rate_and_audio_and_the_cli_takes_it(tiny_x2, tmp_path, monkeypatch, rng):
    from espcn_lab.cli import main
    from espcn_lab.deploy import upscale

    frames = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(10)]
    clip = write_clip(tmp_path / "clip.mkv", frames, rate=Fraction(30000, 1001), audio=True)
    seen = []
    real = upscale.upscale_video
    monkeypatch.setattr(upscale, "upscale_video", lambda *a, **k: seen.append(real(*a, **k)) or seen[-1])
    with pytest.raises(SystemExit) as exit_:
        main(["upscale", "x2", str(clip), "-o", str(tmp_path / "up.mp4"), "--device", "cpu", "--batch", "3",
              "--no-progress"])
    assert exit_.value.code == 0 and seen[0]["frame_path"] == "yuv420p" and seen[0]["audio_streams"] == 1
    with av.open(str(tmp_path / "up.mp4")) as c:
        v = c.streams.video[0]
        assert sum(1 for _ in c.decode(v)) == 10 and v.average_rate == Fraction(30000, 1001)
        assert (v.codec_context.width, v.codec_context.height) == (64, 48) and len(c.streams.audio) == 1


@pytest.mark.parametrize("codec, ext", [("ffv1", "mkv"), ("png", "mov"), ("qtrle", "mov")])
def test_rgb_codecs_take_the_rgb_path_and_stay_lossless(tiny_x2, tmp_path, codec, ext, rng):
    clip = write_clip(tmp_path / "in.mkv", [rng.integers(0, 256, (20, 26, 3), dtype=np.uint8) for _ in range(4)])
    up = Upscaler(tiny_x2, device="cpu")
    done = upscale_video(clip, tmp_path / f"out.{ext}", up, 2, batch=4, codec=codec, progress=False,
                         yuv=up.yuv420p_runner)
    assert done["frame_path"] == "rgb24" and done["frames"] == 4
    want = up(np.stack(list(iter_frames(clip))))
    assert all(np.array_equal(g, w) for g, w in zip(iter_frames(tmp_path / f"out.{ext}"), want))


@pytest.mark.parametrize("size, scale", [((24, 33), 2), ((25, 32), 2), ((25, 33), 3)])
def test_odd_sizes_fall_back_to_the_rgb_path(size, scale, tmp_path, rng):
    model, _ = make_model(scale, features=(8, 4))
    clip = write_clip(tmp_path / "odd.mkv", [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(3)])
    up = Upscaler(model, device="cpu")
    assert up.yuv420p_runner(*size) is None
    done = upscale_video(clip, tmp_path / "odd.mp4", up, scale, progress=False, yuv=up.yuv420p_runner)
    assert done["frame_path"] == "rgb24" and done["frames"] == 3 and done["complete"]
    assert (done["height"], done["width"]) == (size[0] * scale, size[1] * scale)
    with av.open(str(tmp_path / "odd.mp4")) as c:
        assert sum(1 for _ in c.decode(video=0)) == 3


def test_other_inputs_devices_and_big_frames_keep_the_rgb_path(tiny_x2, tmp_path, rng):
    frames = [rng.integers(0, 256, (24, 32, 3), dtype=np.uint8) for _ in range(2)]
    up = Upscaler(tiny_x2, device="cpu")
    for name, clip in {"yuv444p": write_clip(tmp_path / "444.mkv", frames, pix_fmt="yuv444p"),
                       "full range": write_clip(tmp_path / "full.mkv", frames, color_range=2)}.items():
        done = upscale_video(clip, tmp_path / "o.mp4", up, 2, progress=False, yuv=up.yuv420p_runner)
        assert done["frame_path"] == "rgb24" and done["frames"] == 2, name
    assert Upscaler(tiny_x2, device="cpu", backend="torch").yuv420p_runner(24, 32) is None
    assert Upscaler(tiny_x2, device="cpu", tile=16).yuv420p_runner(24, 32) is None  # the RGB path tiles it
    assert Upscaler(tiny_x2, device="cpu", tile=0).yuv420p_runner(24, 32) is not None
