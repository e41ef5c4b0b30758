"""Apply a model to images and frames: Y through the network, CbCr (and alpha) by bicubic.

``Upscaler`` owns every runtime choice (device, precision, backend, memory layout, CUDA graphs,
tiling) so ``upscale``, video and ``bench`` all run one code path. Colour handling is the paper's:
BT.601 luma through the network, chroma and alpha by MATLAB-compatible bicubic (``bicubic_upsample``
reproduces ``imaging.imresize`` for integer upscaling, but in torch so it runs on the device).
Large inputs are cut into overlapping tiles whose overlap covers the receptive field, so tiled and
untiled outputs are identical while memory stays bounded by the tile size.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch

from espcn_lab.imaging import rgb_to_ycbcr, to_uint8
from espcn_lab.model import ESPCN
from espcn_lab.runtime import cuda_graph, make_runner, pick_backend, pick_device, pick_precision

# BT.601 as MATLAB, read off imaging's own function so the two can never disagree.
_BASIS = rgb_to_ycbcr(np.array([[[0, 0, 0], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8))[0]
_OFFSET = torch.tensor(_BASIS[0], dtype=torch.float32)
_RGB_TO_YCBCR = torch.tensor((_BASIS[1:] - _BASIS[0]).T / 255.0, dtype=torch.float32)  # (3 ycc, 3 rgb)
_YCBCR_TO_RGB = torch.linalg.inv(_RGB_TO_YCBCR.double()).float()


@torch.inference_mode()
def network_pass(model: ESPCN, lq: np.ndarray, device: str | torch.device = "cpu") -> np.ndarray:
    """(h, w) or (h, w, 3) uint8 -> the network's (h*s, w*s[, 3]) uint8 output, one untiled pass.

    The reference path for evaluation: no colour handling, no tiling, fp32.
    """
    x = torch.from_numpy(np.ascontiguousarray(lq)).to(device)
    x = (x[None, None] if x.ndim == 2 else x.permute(2, 0, 1)[None]).float() / 255.0
    sr = model.to(device)(x)[0].clamp_(0, 1).mul_(255.0).cpu().numpy()
    return to_uint8(sr[0] if sr.shape[0] == 1 else sr.transpose(1, 2, 0))


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """MATLAB's bicubic kernel (a = -0.5)."""
    ax = x.abs()
    near = 1.5 * ax**3 - 2.5 * ax**2 + 1
    far = -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2
    return torch.where(ax <= 1, near, torch.where(ax < 2, far, torch.zeros_like(ax)))


def _symmetric_index(n: int, pad: int, device: torch.device) -> torch.Tensor:
    idx = torch.arange(-pad, n + pad, device=device)
    idx = torch.where(idx < 0, -idx - 1, idx)
    idx = torch.where(idx >= n, 2 * n - 1 - idx, idx)
    return idx.clamp_(0, n - 1)


def _bicubic_taps(scale: int) -> list[list[float]]:
    """For each of the ``scale`` output phases, the weights of input offsets -2..2 (MATLAB normalises them)."""
    phase = (torch.arange(scale, dtype=torch.float64) + 0.5) / scale - 0.5
    taps = _cubic(phase[:, None] - torch.arange(-2, 3, dtype=torch.float64)[None, :])
    return (taps / taps.sum(1, keepdim=True)).tolist()


def _fir(x: torch.Tensor, weights: list[float], dim: int, n: int) -> torch.Tensor:
    """Sum of ``weights[k] * x.narrow(dim, k, n)``: a 5-tap filter as shifted multiply-adds."""
    acc = None
    for k, wk in enumerate(weights):
        if abs(wk) > 1e-12:  # the centre phase of odd scales is the identity
            part = x.narrow(dim, k, n)
            acc = part * wk if acc is None else acc.add_(part, alpha=wk)
    return acc


def bicubic_upsample(x: torch.Tensor, scale: int) -> torch.Tensor:
    """(B, C, h, w) float -> (B, C, h*scale, w*scale): MATLAB ``imresize(x, scale)``, unrounded.

    Output pixel ``i`` samples input coordinate ``(i + 0.5) / scale - 0.5``, so each of the ``scale``
    phases is a fixed 5-tap filter; applied separably with symmetric borders (as MATLAB). Shifted
    multiply-adds beat a 1-channel conv2d on CPU by ~2x and run anywhere torch does.
    """
    b, c, h, w = x.shape
    taps = _bicubic_taps(scale)
    y = x.reshape(b * c, h, w).index_select(1, _symmetric_index(h, 2, x.device))
    y = torch.stack([_fir(y, t, 1, h) for t in taps], 2).reshape(b * c, h * scale, w)
    y = y.index_select(2, _symmetric_index(w, 2, x.device))
    y = torch.stack([_fir(y, t, 2, w) for t in taps], 3)
    return y.reshape(b, c, h * scale, w * scale)


@functools.lru_cache(maxsize=None)
def _ycbcr_constants(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The matrix and offset on ``device``, copied there once: a CUDA graph capture may not copy from the host."""
    return _RGB_TO_YCBCR.to(device), _OFFSET.to(device).view(1, 3, 1, 1)


def rgb_to_ycbcr_t(rgb: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float RGB in [0, 255] -> (B, 3, H, W) float YCbCr in [0, 255] (BT.601 as MATLAB)."""
    m, off = _ycbcr_constants(rgb.device)
    return torch.einsum("ij,bjhw->bihw", m, rgb) + off


def ycbcr_to_rgb_t(ycc: torch.Tensor) -> torch.Tensor:
    """Inverse of ``rgb_to_ycbcr_t``; unrounded, unclipped. Skips the matrix's zeros (Cb->R, Cr->B)."""
    planes = [ycc[:, j:j + 1] - float(_OFFSET[j]) for j in range(3)]
    luma = planes[0] * float(_YCBCR_TO_RGB[0, 0])  # the same luma weight for R, G and B
    out = []
    for row in _YCBCR_TO_RGB.tolist():
        acc = luma.clone()
        for j in (1, 2):
            if abs(row[j]) > 1e-5:  # 3e-7 and 3e-6: rounding residue of exact zeros
                acc.add_(planes[j], alpha=row[j])
        out.append(acc)
    return torch.cat(out, 1)


def receptive_radius(model: ESPCN) -> int:
    """LR pixels of context each output pixel sees on one side: sum of k // 2 over the convolutions."""
    return sum(conv.kernel_size[0] // 2 for conv in model.conv_layers())


def _round_u8(x: torch.Tensor) -> torch.Tensor:
    return torch.floor(x + 0.5).clamp_(0, 255).to(torch.uint8)


class Upscaler:
    """A loaded model ready to super-resolve uint8 images or frame batches on one device."""

    def __init__(self, model: ESPCN, device: str = "auto", precision: str = "auto", backend: str = "auto",
                 tile: int = 1024, channels_last: bool = True, compile: bool = False, cuda_graphs: bool = True):
        self.device = pick_device(device)
        self.precision = pick_precision(precision, self.device)
        self.backend = pick_backend(backend, self.device, self.precision)
        self.scale, self.channels = model.scale, model.channels
        self.margin = max(receptive_radius(model), 2)  # 2 = bicubic's reach on each side
        self.tile = int(tile)
        self.net = make_runner(model, self.backend, self.device, self.precision, channels_last, compile)
        self._graphs: dict[tuple, Callable] | None = (
            {} if cuda_graphs and not compile and self.device.type == "cuda" and self.backend == "torch" else None)
        self._seen: set[tuple] = set()
        self._model = model  # ONNX Runtime runs the whole frame as one graph per channel count (frame_graph)
        self._frames: dict[int, Callable] | None = {} if self.backend == "onnxruntime" else None

    def describe(self) -> str:
        return f"{self.backend} on {self.device} ({self.precision})"

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
        return _round_u8(out).permute(0, 2, 3, 1).contiguous()

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
        """The ONNX Runtime whole-frame graph for ``channels``-channel frames, built on first use."""
        if channels not in self._frames:
            from espcn_lab.frame_graph import ort_frame_runner

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
