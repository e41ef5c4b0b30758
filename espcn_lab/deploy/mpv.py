"""Render one YUV frame through a real mpv, headless: Xvfb plus Mesa's software OpenGL (llvmpipe).

How an exported shader (``export --format glsl``) is checked against PyTorch and timed: the tests
(tests/test_glsl.py) and benchmarks/bench_glsl_mpv.py both drive mpv through it. mpv draws the frame into a window of
exactly the size asked for, and a small Lua script saves what it drew (``screenshot-to-file FILE
window``) and quits. The options keep mpv from changing values on the way: no dithering, no
debanding, BT.601 limited-range matrix and identical source/target primaries and transfer, so
there is no colour management.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from espcn_lab.imaging.read import read_image

_SHOT_LUA = """
local out = mp.get_opt("espcn_shot")
local tries = 0
local function shoot()
    tries = tries + 1
    local ok = mp.command_native({"screenshot-to-file", out, "window"}, false)
    if ok == false and tries < 40 then
        mp.add_timeout(0.5, shoot)
    else
        mp.command("quit")
    end
end
mp.register_event("playback-restart", function() mp.add_timeout(0.2, shoot) end)
"""

# what mpv must not do to the values (see mpv's manual for each)
PLAIN = ("--no-config", "--no-audio", "--osd-level=0", "--no-osc", "--no-input-default-bindings",
         "--no-border", "--no-keepaspect-window", "--hwdec=no", "--dither-depth=no", "--deband=no",
         "--vf=format=colormatrix=bt.601:colorlevels=limited:primaries=bt.709:gamma=bt.1886",
         "--target-prim=bt.709", "--target-trc=bt.1886", "--screenshot-format=png",
         "--screenshot-high-bit-depth=no")
SOFTWARE_GL = ("--gpu-api=opengl", "--gpu-context=x11egl", "--gpu-sw=yes")


def missing() -> str | None:
    """Why an mpv render cannot run here, or None."""
    need = [name for name in ("mpv", "Xvfb") if shutil.which(name) is None]
    return f"{' and '.join(need)} not installed (apt-get install -y mpv xvfb)" if need else None


@contextmanager
def xvfb(width: int = 2048, height: int = 2048) -> Iterator[str]:
    """A private X server; yields its DISPLAY (e.g. ':5')."""
    read, write = os.pipe()
    proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", f"{width}x{height}x24",
                             "-nolisten", "tcp"], pass_fds=(write,), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        with os.fdopen(read) as f:
            number = f.readline().strip()
        if not number:
            raise RuntimeError("Xvfb did not start")
        yield f":{number}"
    finally:
        proc.terminate()
        proc.wait(10)


def write_y4m(path: Path, frames: np.ndarray) -> Path:
    """(H, W, 3) or (N, H, W, 3) uint8 YCbCr -> a yuv444p .y4m file."""
    frames = frames[None] if frames.ndim == 3 else frames
    _, h, w, _ = frames.shape
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C444 XCOLORRANGE=LIMITED\n".encode())
        for frame in frames:
            f.write(b"FRAME\n" + np.ascontiguousarray(frame.transpose(2, 0, 1)).tobytes())
    return path


def mpv_command(video: Path, size: tuple[int, int], shaders: Sequence[Path] = (), vo: str = "gpu",
                extra: Sequence[str] = ()) -> list[str]:
    """The mpv command line that plays ``video`` in a ``size`` = (width, height) window."""
    cmd = ["mpv", *PLAIN, *SOFTWARE_GL, f"--vo={vo}", f"--geometry={size[0]}x{size[1]}+0+0"]
    if shaders:
        cmd.append("--glsl-shaders=" + ":".join(str(s) for s in shaders))
    return [*cmd, *extra, str(video)]


def render(display: str, video: Path, size: tuple[int, int], out: Path, shaders: Sequence[Path] = (),
           vo: str = "gpu", extra: Sequence[str] = (), timeout: float = 600) -> tuple[np.ndarray, str]:
    """mpv's window after the first frame: (H, W, 3) uint8 RGB, and mpv's log."""
    script = out.with_suffix(".lua")
    script.write_text(_SHOT_LUA)
    log = out.with_suffix(".log")
    cmd = mpv_command(video, size, shaders, vo, [*extra, "--pause", f"--script={script}",
                                                 f"--script-opts=espcn_shot={out}", f"--log-file={log}"])
    done = subprocess.run(cmd, env={**os.environ, "DISPLAY": display}, capture_output=True, text=True,
                          timeout=timeout)
    text = log.read_text(errors="replace") if log.exists() else ""
    if done.returncode != 0 or not out.exists():
        tail = "\n".join(line for line in text.splitlines() if "error" in line.lower())[-2000:]
        raise RuntimeError(f"mpv failed (exit {done.returncode}): {done.stderr[-1000:]}\n{tail}")
    return read_image(out, grey="rgb").pixels, text
