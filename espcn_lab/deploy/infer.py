"""Apply a model to images and frames: Y through the network, CbCr (and alpha) by bicubic.

``Upscaler`` owns every runtime choice (device, precision, backend, memory layout, CUDA graphs,
tiling) so ``upscale``, video and ``bench`` all run one code path. Colour handling is the paper's:
BT.601 luma through the network, chroma and alpha by MATLAB-compatible bicubic (``ops``).
Large inputs are cut into overlapping tiles whose overlap covers the receptive field, so tiled and
untiled outputs are identical while memory stays bounded by the tile size. With ONNX Runtime a frame
skips ``pipeline``: ``cpu_frame`` (RGB, Y model, CPU) or one ONNX graph (``frame_graph``); on CPU, video
frames may skip RGB altogether (``yuv420p_runner``).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from espcn_lab.deploy.ops import (
    bicubic_upsample,
    rgb_to_ycbcr_t,
    round_u8,
    ycbcr_to_rgb_t,
)
from espcn_lab.deploy.runtime import (
    cuda_graph,
    make_runner,
    pick_backend,
    pick_device,
    pick_precision,
)
from espcn_lab.model import ESPCN


class Upscaler:
    """A loaded model ready to super-resolve uint8 images or frame batches on one device."""

    def __init__(self, model: ESPCN, device: str = "auto", precision: str = "auto", backend: str = "auto",
                 tile: int = 1024, channels_last: bool = True, compile: bool = False, cuda_graphs: bool = True):
        self.device = pick_device(device)
        self.precision = pick_precision(precision, self.device)
        self.backend = pick_backend(backend, self.device, self.precision)
        self.scale, self.channels = model.scale, model.channels
        self.margin = max(model.receptive_radius(), 2)  # 2 = bicubic's reach on each side
        self.tile = int(tile)
        self.net = make_runner(model, self.backend, self.device, self.precision, channels_last, compile)
        self._graphs: dict[tuple, Callable] | None = (
            {} if cuda_graphs and not compile and self.device.type == "cuda" and self.backend in ("torch", "triton")
            else None)
        self._seen: set[tuple] = set()
        self._model = model  # ONNX Runtime runs the whole frame as one graph per channel count (frame_graph)
        self._frames: dict[int, Callable] | None = {} if self.backend == "onnxruntime" else None

    def describe(self) -> str:
        return f"{self.backend} on {self.device} ({self.precision})"

    @property
    def uses_cuda_graphs(self) -> bool:
        """Whether repeated frame shapes replay a captured CUDA graph (CUDA, torch or triton, not compiled)."""
        return self._graphs is not None

    def frame_runner(self, channels: int) -> Callable | None:
        """The whole-frame runner that (B, h, w, ``channels``) uint8 frames take, built now if needed, or None
        where frames run ``pipeline`` (torch backends)."""
        return self._frame_runner(channels) if self._frames is not None else None

    def yuv420p_runner(self, height: int, width: int) -> Callable | None:
        """The YUV-native video frame function for LR frames of ``height`` x ``width`` (``CpuFrameRunner.yuv420p``:
        (B, h*3/2, w) uint8 yuv420p -> the same at ``scale`` times the size, no RGB anywhere), or None where
        frames keep the RGB path: another device or backend, an RGB model, no numba, odd sides (4:2:0 chroma
        would not scale to whole HR samples), or frames larger than one tile (the RGB path tiles them)."""
        fits = self.tile <= 0 or max(height, width) <= self.tile
        if self._frames is None or self.device.type != "cpu" or self.channels != 1 or height % 2 or width % 2 \
                or not fits:
            return None
        return getattr(self._frame_runner(3), "yuv420p", None)  # the one-graph fallback (no numba) has none

    def _net01(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x / 255.0).clamp_(0, 1) * 255.0

    def pipeline(self, lq: torch.Tensor) -> torch.Tensor:
        """(B, h, w, C) uint8 on the device, C in 1..4 (L, LA, RGB, RGBA) -> (B, h*s, w*s, C) uint8."""
        x = lq.permute(0, 3, 1, 2).float()
        n_colour = 3 if x.shape[1] >= 3 else 1
        colour, extra = x[:, :n_colour], x[:, n_colour:]
        if n_colour == 3 and self.channels == 1:
            ycc = rgb_to_ycbcr_t(colour)
            y = torch.floor(ycc[:, :1] + 0.5).clamp_(0, 255)  # the uint8 luma the model was trained on
            out = ycbcr_to_rgb_t(torch.cat([self._net01(y), bicubic_upsample(ycc[:, 1:], self.scale)], 1))
        elif n_colour == self.channels:
            out = self._net01(colour)
        else:  # grey image through an RGB model
            out = self._net01(colour.expand(-1, 3, -1, -1)).mean(1, keepdim=True)
        if extra.shape[1]:
            out = torch.cat([out, bicubic_upsample(extra, self.scale)], 1)
        # interleaved on the device: a planar result viewed as (B, H, W, C) made the host copy a strided
        # gather (10 ms of a 11 ms 1080p frame on an H100, benchmarks/profile_cuda_frame.py)
        return round_u8(out).permute(0, 2, 3, 1).contiguous()

    def _run(self, lq: torch.Tensor) -> torch.Tensor:
        """``pipeline``: one ONNX Runtime graph for the whole frame, or replayed from a CUDA graph once a
        tile shape repeats (video, benchmarks)."""
        if self._frames is not None:
            return self._frame_runner(lq.shape[-1])(lq)
        key = tuple(lq.shape)
        if self._graphs is None or key not in self._seen:
            self._seen.add(key)
            return self.pipeline(lq)
        if key not in self._graphs:
            self._graphs[key] = cuda_graph(self.pipeline, lq)
        return self._graphs[key](lq)

    def _frame_runner(self, channels: int) -> Callable:
        """The whole-frame runner for ``channels``-channel frames, built on first use: on CPU, RGB frames
        with a Y model take ``cpu_frame`` (ONNX Runtime network + numba colour kernels) when numba is
        installed; every other case one ONNX Runtime graph (``frame_graph``)."""
        if channels not in self._frames:
            from espcn_lab.deploy import cpu_frame
            from espcn_lab.deploy.frame_graph import ort_frame_runner

            if channels == 3 and self.channels == 1 and self.device.type == "cpu" and cpu_frame.available():
                self._frames[channels] = cpu_frame.CpuFrameRunner(self._model)
            else:
                self._frames[channels] = ort_frame_runner(self._model, channels, self.device)
        return self._frames[channels]

    def _spans(self, n: int) -> list[tuple[int, int, int, int]]:
        """Tiles along one axis: (start, stop) kept, (lo, hi) read with the overlap margin."""
        if n <= self.tile or self.tile <= 0:
            return [(0, n, 0, n)]
        return [(a, min(a + self.tile, n), max(0, a - self.margin), min(n, a + self.tile + self.margin))
                for a in range(0, n, self.tile)]

    @torch.inference_mode()
    def __call__(self, lq: np.ndarray) -> np.ndarray:
        """(h, w), (h, w, C) or (B, h, w, C) uint8 -> the same layout at ``scale`` times the size, uint8."""
        squeeze = lq.ndim == 2
        batch = lq[None, ..., None] if squeeze else lq[None] if lq.ndim == 3 else lq
        b, h, w, c = batch.shape
        s = self.scale
        rows, cols = self._spans(h), self._spans(w)
        if len(rows) == len(cols) == 1:  # one tile: the download is the result
            tile = torch.from_numpy(np.require(batch, requirements="CW")).to(self.device)
            out = self._run(tile).cpu().numpy()
            return out[0, ..., 0] if squeeze else out[0] if lq.ndim == 3 else out
        out = np.empty((b, h * s, w * s, c), dtype=np.uint8)
        for y0, y1, ya, yb in rows:
            for x0, x1, xa, xb in cols:
                tile = torch.from_numpy(np.require(batch[:, ya:yb, xa:xb], requirements="CW")).to(self.device)
                sr = self._run(tile)[:, (y0 - ya) * s:(y1 - ya) * s, (x0 - xa) * s:(x1 - xa) * s]
                out[:, y0 * s:y1 * s, x0 * s:x1 * s] = sr.cpu().numpy()
        return out[0, ..., 0] if squeeze else out[0] if lq.ndim == 3 else out
