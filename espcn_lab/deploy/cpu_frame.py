"""The CPU whole-frame path for RGB frames and a Y model: ONNX Runtime for the network, numba for the rest.

The one-graph ONNX path (``frame_graph``) does the colour work in a dozen whole-frame ONNX Runtime
ops (conversions, a 5x5 chroma conv, adds, clips, casts, layout transposes), each a pass over ~25 MB
of float phase planes: on 2 cores that cost 35-110% on top of the network. Here the network runs as
its own session without the pixel shuffle (``onnx_bytes(phases=True)``) on preallocated buffers
bound once (``io_binding``: no copies at the session boundary), and the colour work is two fused
kernels (``cpu_kernels``) that split the rows over the cores: RGB -> Y/Cb/Cr at LR before the
network, then bicubic chroma + YCbCr -> RGB + rounding + pixel shuffle + NHWC, writing each output
byte once. The session's threads do not spin after a run (``ort_session``), so the kernels get the cores.

Output equals ``Upscaler.pipeline`` but for one grey level on rare rounding ties (tests/test_cpu_frame.py).
Video frames in yuv420p skip RGB altogether (``yuv420p``, tests/deploy/test_video_yuv.py): their Y plane
is the network's input and the kernel writes the HR Y, U and V planes the encoder takes.
"""

from __future__ import annotations

import itertools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from espcn_lab.deploy.ops import OFFSET_T, RGB_TO_YCBCR_T, YCBCR_TO_RGB_T, bicubic_taps
from espcn_lab.errors import UserError
from espcn_lab.model import ESPCN


def available() -> bool:
    """Whether numba imports here (else ``Upscaler`` keeps the one-graph ONNX path)."""
    import importlib.util

    return importlib.util.find_spec("numba") is not None


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _constants(scale: int) -> tuple[np.ndarray, ...]:
    """RGB -> YCbCr matrix and offset, bicubic phase taps, and the ``_colour_row`` coefficients."""
    back = torch.where(YCBCR_TO_RGB_T.abs() > 1e-5, YCBCR_TO_RGB_T, 0.0)  # exact zeros, as ycbcr_to_rgb_t
    if back[0, 1] or back[2, 2] or (back[:, 0] - back[0, 0]).abs().max() > 1e-5:  # it uses [0, 0] for all three
        raise UserError("cpu_frame assumes BT.601's inverse matrix shape (one luma weight, no Cb->R, no Cr->B)")
    off = OFFSET_T.numpy().astype(np.float32)
    k = np.array([back[0, 0], back[0, 2], back[1, 1], back[1, 2], back[2, 1], off[0], off[1], off[2]], np.float32)
    return (RGB_TO_YCBCR_T.numpy().astype(np.float32), off, np.array(bicubic_taps(scale), np.float32), k)


class CpuFrameRunner:
    """``(B, h, w, 3)`` uint8 tensor -> ``(B, h*s, w*s, 3)`` uint8 tensor for a Y (1-channel) model, on CPU."""

    CHUNKS = 4  # row bands per thread

    def __init__(self, model: ESPCN, threads: int = 0):
        from espcn_lab.deploy.onnx import onnx_bytes, ort_session

        if model.channels != 1:
            raise UserError("the numba frame path needs a Y (1-channel) model")
        self.scale, self.threads = model.scale, threads or cpu_count()
        self.session = ort_session(onnx_bytes(model, phases=True), torch.device("cpu"), self.threads)
        self.m, self.off, self.taps, self.k = _constants(model.scale)
        self._pool = ThreadPoolExecutor(self.threads - 1) if self.threads > 1 else None
        self._shape: tuple | None = None

    def _bind(self, shape: tuple[int, ...]) -> None:
        """Buffers for ``shape`` (B, h, w) LR frames, bound to the session once and reused (RGB and YUV alike)."""
        import onnxruntime as ort

        b, h, w = shape
        self.y = np.empty((b, 1, h, w), np.float32)
        self.cb, self.cr = np.empty((b, h, w), np.float32), np.empty((b, h, w), np.float32)
        self.lum = np.empty((b, self.scale**2, h, w), np.float32)
        self.binding = self.session.io_binding()
        self.binding.bind_ortvalue_input("lq", ort.OrtValue.ortvalue_from_numpy(self.y))
        self.binding.bind_ortvalue_output("phases", ort.OrtValue.ortvalue_from_numpy(self.lum))
        self._shape = shape

    def _split(self, kernel, *args) -> None:
        """Run ``kernel(*args, r0, r1)`` over the B*h LR rows in ``CHUNKS`` bands per thread, each thread
        taking the next band when done: a core busy with other work then takes fewer bands instead of
        making the others wait for its half."""
        rows = self.y.shape[0] * self.y.shape[2]
        n = min(rows, self.CHUNKS * self.threads)
        cuts = [rows * t // n for t in range(n + 1)]
        bands = itertools.count()  # next() is atomic under the GIL

        def work() -> None:
            while (t := next(bands)) < n:
                kernel(*args, cuts[t], cuts[t + 1])

        jobs = [self._pool.submit(work) for _ in range(self.threads - 1)] if self._pool else []
        work()
        for job in jobs:
            job.result()

    def network(self) -> np.ndarray:
        """The network on the bound luma buffer -> the (B, s*s, h, w) phase planes (for timing it alone)."""
        self.session.run_with_iobinding(self.binding)
        return self.lum

    def __call__(self, lq: torch.Tensor) -> torch.Tensor:
        from espcn_lab.deploy.cpu_kernels import compose_kernel, prep_rows

        rgb = np.ascontiguousarray(lq.cpu().numpy())
        if rgb.ndim != 4 or rgb.shape[-1] != 3 or rgb.dtype != np.uint8:
            raise UserError(f"the numba frame path takes (B, h, w, 3) uint8 frames, got {rgb.dtype} {rgb.shape}")
        if rgb.shape[:3] != self._shape:
            self._bind(rgb.shape[:3])
        b, h, w, _ = rgb.shape
        s = self.scale
        self._split(prep_rows, rgb, self.m, self.off, self.y, self.cb, self.cr)
        self.network()
        out = np.empty((b, h * s, w * s * 3), np.uint8)
        self._split(compose_kernel(s), self.lum, self.cb, self.cr, self.taps, self.k, out)
        return torch.from_numpy(out.reshape(b, h * s, w * s, 3)).to(lq.device)

    def yuv420p(self, frames: np.ndarray) -> np.ndarray:
        """(B, h*3/2, w) uint8 yuv420p frames, h and w even (PyAV's ``to_ndarray(format="yuv420p")``: the Y
        plane's rows, then U's and V's) -> (B, h*s*3/2, w*s) uint8 yuv420p, for video without RGB anywhere.

        The Y plane goes through the network as it is: limited-range BT.601 Y is the Y the model was trained
        on (MATLAB's ``rgb2ycbcr``). The HR Y plane is the network's output rounded; U and V are MATLAB
        bicubic of the LR chroma planes (``cpu_kernels.yuv420p_kernel``).
        """
        from espcn_lab.deploy.cpu_kernels import luma_rows, yuv420p_kernel

        frames = np.ascontiguousarray(frames)
        if frames.ndim != 3 or frames.dtype != np.uint8 or frames.shape[1] % 3 or frames.shape[2] % 2:
            raise UserError(f"the YUV frame path takes (B, h*3/2, w) uint8 yuv420p frames with h and w even, got "
                            f"{frames.dtype} {frames.shape}")
        b, rows, w = frames.shape
        if (b, rows // 3 * 2, w) != self._shape:
            self._bind((b, rows // 3 * 2, w))
        self._split(luma_rows, frames, self.y)
        self.network()
        out = np.empty((b, rows * self.scale, w * self.scale), np.uint8)
        self._split(yuv420p_kernel(self.scale), self.lum, frames, self.taps, out)
        return out
