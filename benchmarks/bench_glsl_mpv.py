"""The exported mpv shader in a real mpv, headless (Xvfb + Mesa's software OpenGL, llvmpipe): what it
costs per frame, and the README's screenshot pair.

Cost: mpv plays a yuv444p clip of real Set14 crops (``--untimed --framedrop=no``, nothing skipped) into a
window r times the clip, with and without the shader of the shipped model; time per frame is the
difference between a long and a short run divided by the extra frames, so start-up and shader
compilation drop out. The first start with a cold Mesa shader cache is timed separately (that is
where llvmpipe compiles the passes). All of it is software GL on this machine's CPU, not a GPU figure.

Figures (``--figures``): a 264x264 crop of Set14 monarch, degraded to 88x88 as in evaluation (MATLAB
bicubic), drawn by mpv at 3x with its own bicubic (``catmull_rom``, the MATLAB cubic, for luma and
chroma) and with the x3 shader (chroma still by mpv's catmull_rom); PSNR-Y against the HR crop (3
pixels shaved) goes into the JSON.

Usage: ``python benchmarks/bench_glsl_mpv.py [--scales 2 3 4] [--lr 320x180] [--frames 10 40]
[--figures]``. Writes ``benchmarks/results/glsl_mpv.json``; needs ``apt-get install mpv xvfb``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from espcn_lab.checkpoint import load_model
from espcn_lab.deploy import mpv as _mpv
from espcn_lab.deploy.glsl import make_shader
from espcn_lab.evaluate.metrics import psnr_y
from espcn_lab.imaging.colour import rgb_to_y, rgb_to_ycbcr, to_uint8
from espcn_lab.imaging.degrade import degrade
from espcn_lab.paths import shared_data

ROOT = Path(__file__).resolve().parents[1]
DATA = shared_data()
RESULTS, FIGURES = ROOT / "benchmarks" / "results", ROOT / "docs" / "figures"
# mpv's catmull_rom is the Keys cubic (a = -0.5) of MATLAB's bicubic: 54 dB PSNR-Y against
# imaging.degrade.upscale_bicubic on the figure's crop. (mpv 0.35's own "bicubic" is B=1, C=0, a blur,
# and --scale-param1/2 did not change it here.)
MPV_BICUBIC = ("--scale=catmull_rom", "--cscale=catmull_rom")


def clip_frames(width: int, height: int, n: int) -> np.ndarray:
    """(n, height, width, 3) YCbCr: crops of Set14 monarch panning by a few pixels a frame."""
    rgb = np.asarray(Image.open(DATA / "Set14" / "monarch.png").convert("RGB"))
    starts = [(2 * i % (rgb.shape[0] - height), 5 * i % (rgb.shape[1] - width)) for i in range(n)]
    return np.stack([to_uint8(rgb_to_ycbcr(rgb[y:y + height, x:x + width])) for y, x in starts])


def play_seconds(display: str, video: Path, size: tuple[int, int], shaders: list[Path], frames: int,
                 cold: bool = False) -> float:
    """Wall time of mpv playing ``frames`` frames as fast as it can into a ``size`` window."""
    cmd = _mpv.mpv_command(video, size, shaders, "gpu", ["--untimed", "--framedrop=no", f"--frames={frames}",
                                                          "--really-quiet", "--opengl-swapinterval=0"])
    env = {**os.environ, "DISPLAY": display, **({"MESA_SHADER_CACHE_DISABLE": "true"} if cold else {})}
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, timeout=1800, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def cost(display: str, tmp: Path, scale: int, lr: tuple[int, int], frames: tuple[int, int]) -> dict:
    """ms per output frame with and without the shader, and the cold first start of each."""
    video = _mpv.write_y4m(tmp / "clip.y4m", clip_frames(*lr, max(frames)))
    shader = tmp / f"espcn_x{scale}.glsl"
    shader.write_text(make_shader(load_model(f"x{scale}").model).text)
    size = (lr[0] * scale, lr[1] * scale)
    row: dict = {"scale": scale, "lr": list(lr), "output": list(size), "frames": list(frames)}
    for label, shaders in (("mpv_bilinear", []), ("espcn_shader", [shader])):
        row[f"{label}_cold_start_s"] = play_seconds(display, video, size, shaders, 1, cold=True)
        short, long = (min(play_seconds(display, video, size, shaders, n) for _ in range(2)) for n in frames)
        row[f"{label}_ms_per_frame"] = 1000 * (long - short) / (frames[1] - frames[0])
    return row


def figures(display: str, tmp: Path) -> dict:
    """The README pair: mpv's bicubic and the x3 shader on the same 88x88 LR crop, with PSNR-Y vs HR."""
    hr = np.asarray(Image.open(DATA / "Set14" / "monarch.png").convert("RGB"))[150:414, 300:564]
    video = _mpv.write_y4m(tmp / "monarch.y4m", to_uint8(rgb_to_ycbcr(degrade(hr, 3))))
    shader = tmp / "espcn_x3.glsl"
    shader.write_text(make_shader(load_model("x3").model).text)
    FIGURES.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, shaders in (("glsl_bicubic_x3", []), ("glsl_espcn_x3", [shader])):
        rgb, _ = _mpv.render(display, video, (264, 264), tmp / f"{name}.png", shaders, extra=MPV_BICUBIC)
        Image.fromarray(rgb).save(FIGURES / f"{name}.png", optimize=True)
        out[name] = {"file": f"docs/figures/{name}.png", "psnr_y_vs_hr": psnr_y(rgb_to_y(rgb), rgb_to_y(hr), 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", type=int, nargs="+", default=[3])
    ap.add_argument("--lr", default="320x180", help="clip size (the LR input), WIDTHxHEIGHT")
    ap.add_argument("--frames", type=int, nargs=2, default=[10, 40], help="short and long run lengths")
    ap.add_argument("--figures", action="store_true", help="also write docs/figures/glsl_{bicubic,espcn}_x3.png")
    args = ap.parse_args()
    why = _mpv.missing()
    if why:
        sys.exit(f"bench_glsl_mpv: {why}")
    lr = tuple(int(v) for v in args.lr.split("x"))
    report: dict = {"renderer": "mpv vo=gpu, OpenGL on Mesa llvmpipe (software) under Xvfb", "cpus": os.cpu_count()}
    with tempfile.TemporaryDirectory() as tmp, _mpv.xvfb() as display:
        report["mpv"] = subprocess.run(["mpv", "--version"], capture_output=True, text=True).stdout.splitlines()[0]
        report["cost"] = [cost(display, Path(tmp), s, lr, tuple(args.frames)) for s in args.scales]
        if args.figures:
            report["figures"] = figures(display, Path(tmp))
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "glsl_mpv.json").write_text(json.dumps(report, indent=2) + "\n")
    print("| scale | LR -> output | mpv alone ms/frame | with shader ms/frame | cold start alone / with shader (s) |")
    print("|---|---|---|---|---|")
    for r in report["cost"]:
        print(f"| x{r['scale']} | {r['lr'][0]}x{r['lr'][1]} -> {r['output'][0]}x{r['output'][1]} | "
              f"{r['mpv_bilinear_ms_per_frame']:.0f} | {r['espcn_shader_ms_per_frame']:.0f} | "
              f"{r['mpv_bilinear_cold_start_s']:.1f} / {r['espcn_shader_cold_start_s']:.1f} |")
    for name, f in report.get("figures", {}).items():
        print(f"{f['file']}: PSNR-Y vs HR {f['psnr_y_vs_hr']:.2f} dB")


if __name__ == "__main__":
    main()
