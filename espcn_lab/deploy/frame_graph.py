"""The whole frame path (uint8 in, colour handling, network, bicubic, uint8 out) as one ONNX graph.

``Upscaler.pipeline`` does the colour work in many small torch ops; on CPU they cost several times
the network itself. ``FrameGraph`` computes the same thing with a few large ops that ONNX Runtime
fuses. Everything stays at LR as ``s*s`` phase planes until the end: the luma is a 1x1 conv; the
MATLAB bicubic chroma (each output phase is the outer product of two 5-tap filters), the YCbCr ->
RGB matrix, the offsets and the rounding half fold into ONE 5x5 conv on the symmetrically padded
CbCr planes, to which the network's luma phases are added; after rounding, two uint8 transposes do
the pixel shuffle and the NHWC layout together. Only the floating-point summation order differs
from ``pipeline``: outputs agree to within one grey level on rare rounding ties.

On CPU, RGB frames with a Y model take ``cpu_frame`` instead when numba is installed (its dozen
whole-frame ops cost 20-60% on top of the network there, the numba kernels a few %); this graph
serves every other layout, CUDA's ONNX Runtime provider, and is the fallback without numba.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch
from torch import nn

from espcn_lab.deploy.ops import OFFSET_T as _OFFSET
from espcn_lab.deploy.ops import RGB_TO_YCBCR_T as _RGB_TO_YCBCR
from espcn_lab.deploy.ops import YCBCR_TO_RGB_T as _YCBCR_TO_RGB
from espcn_lab.deploy.ops import bicubic_taps as _bicubic_taps
from espcn_lab.deploy.ops import symmetric_index as _symmetric_index
from espcn_lab.model import ESPCN


def _bicubic_weight(scale: int, groups: int) -> torch.Tensor:
    """(groups*s*s, 1, 5, 5) conv weight: output channel (g, py, px) = taps[py] (x) taps[px]."""
    taps = torch.tensor(_bicubic_taps(scale), dtype=torch.float64)  # (s, 5)
    phases = torch.einsum("ak,bl->abkl", taps, taps).reshape(scale * scale, 1, 5, 5)
    return phases.repeat(groups, 1, 1, 1).float()


def _pointwise(matrix: torch.Tensor, bias: torch.Tensor) -> nn.Conv2d:
    conv = nn.Conv2d(matrix.shape[1], matrix.shape[0], 1)
    conv.weight.data = matrix.float().reshape(*matrix.shape, 1, 1).clone()
    conv.bias.data = bias.float().clone()
    return conv


def _mix(model: ESPCN, in_channels: int) -> nn.Conv2d | None:
    """1x1 conv from phase planes ordered (plane, py, px) to output planes ordered (py, px, channel).

    The planes are the network's outputs then the bicubic ones (alpha); the plane-level matrix
    averages an RGB model's outputs for a grey input, else passes planes through. None for one plane.
    """
    n_extra, s2 = in_channels - (3 if in_channels >= 3 else 1), model.scale**2
    if in_channels < 3 and model.channels == 3:
        plane, bias = torch.full((1, 3), 1 / 3, dtype=torch.float64), torch.zeros(1, dtype=torch.float64)
    elif in_channels == 1:
        return None
    else:
        plane, bias = torch.eye(model.channels, dtype=torch.float64), torch.zeros(model.channels, dtype=torch.float64)
    full = torch.block_diag(plane, torch.eye(n_extra, dtype=torch.float64))
    bias = torch.cat([bias, torch.zeros(n_extra, dtype=torch.float64)])
    matrix = torch.kron(full, torch.eye(s2, dtype=torch.float64))  # rows (out, phase), columns (in, phase)
    order = torch.arange(in_channels * s2).reshape(in_channels, s2).T.reshape(-1)  # (phase, out) row order
    return _pointwise(matrix[order], bias.repeat_interleave(s2)[order])


def _chroma_weight(scale: int, n_extra: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Conv (weight, bias) from padded [Cb, Cr, extra...] to (phase, R G B extra...) output planes.

    Bicubic is linear and its phase taps sum to 1, so the YCbCr -> RGB matrix (less its luma
    column, added separately), the offsets and the rounding half fold into one 5x5 convolution.
    """
    back = torch.where(_YCBCR_TO_RGB.abs() > 1e-5, _YCBCR_TO_RGB, 0.0).double()  # exact zeros, as pipeline
    plane = torch.block_diag(back[:, 1:], torch.eye(n_extra, dtype=torch.float64))  # (C out, 2 + extra in)
    bias = torch.cat([-(back @ _OFFSET.double()), torch.zeros(n_extra, dtype=torch.float64)]) + 0.5
    taps = torch.tensor(_bicubic_taps(scale), dtype=torch.float64)
    phases = torch.einsum("ak,bl->abkl", taps, taps).reshape(scale * scale, 1, 1, 5, 5)
    weight = (phases * plane[None, :, :, None, None]).reshape(-1, plane.shape[1], 5, 5)  # rows (phase, out)
    return weight.float(), bias.repeat(scale * scale).float()


def _pad2(x: torch.Tensor) -> torch.Tensor:
    """(B, n, h, w) -> (B, n, h+4, w+4) with MATLAB's symmetric border."""
    h, w = x.shape[2], x.shape[3]
    return x.index_select(2, _symmetric_index(h, 2, x.device)).index_select(3, _symmetric_index(w, 2, x.device))


class FrameGraph(nn.Module):
    """(B, h, w, C) uint8, C fixed at build time in 1..4 (L, LA, RGB, RGBA) -> (B, h*s, w*s, C) uint8.

    Every plane stays at LR as ``s*s`` phase planes (the network's last conv, the bicubic phase conv)
    until rounding, ordered (phase, channel); two uint8 transposes that ONNX Runtime does as block
    copies then make the NHWC output (pixel shuffle and channels-last in one go).
    """

    def __init__(self, model: ESPCN, in_channels: int):
        super().__init__()
        self.net, self.scale, self.in_channels = model, model.scale, in_channels
        self.n_colour = 3 if in_channels >= 3 else 1
        self.luma = self.n_colour == 3 and model.channels == 1
        n_extra = in_channels - self.n_colour
        if self.luma:
            self.to_y = _pointwise(_RGB_TO_YCBCR[:1], _OFFSET[:1])
            self.to_c = _pointwise(_RGB_TO_YCBCR[1:], _OFFSET[1:])
            weight, bias = _chroma_weight(self.scale, n_extra)
            self.register_buffer("chroma_w", weight, persistent=False)
            self.register_buffer("chroma_b", bias, persistent=False)
            self.luma_gain = float(_YCBCR_TO_RGB[0, 0])  # the same for R, G and B
        else:
            self.register_buffer("bicubic", _bicubic_weight(self.scale, n_extra), persistent=False)
            self.mix = _mix(model, in_channels)

    def _net_phases(self, x: torch.Tensor, gain: float = 255.0) -> torch.Tensor:
        """(B, c, h, w) in [0, 255] -> the network's (B, c*s*s, h, w) phase planes, clamped, times ``gain``."""
        return self.net.last(self.net.body(x / 255.0)).clamp(0, 1) * gain

    def _luma_path(self, colour: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        """RGB(A) with a Y model -> (B, s*s, C, h, w) float, rounding half added: chroma conv + luma term."""
        y = torch.floor(self.to_y(colour) + 0.5).clamp(0, 255)  # the uint8 luma the model was trained on
        luma = self._net_phases(y, 255.0 * self.luma_gain)
        smooth = self.to_c(colour)
        smooth = torch.cat([smooth, extra], 1) if extra.shape[1] else smooth
        z = nn.functional.conv2d(_pad2(smooth), self.chroma_w, self.chroma_b)
        b, _, h, w = z.shape
        luma = luma.reshape(b, -1, 1, h, w)
        if extra.shape[1]:
            luma = nn.functional.pad(luma.expand(-1, -1, 3, -1, -1), (0, 0, 0, 0, 0, extra.shape[1]))
        return z.reshape(b, -1, self.in_channels, h, w) + luma

    def _plain_path(self, colour: torch.Tensor, extra: torch.Tensor) -> torch.Tensor:
        """L(A) or RGB(A) with a model of the matching or RGB kind -> (B, s*s*C, h, w) float, rounding half added."""
        net_in = colour if self.n_colour == self.net.channels else colour.expand(-1, 3, -1, -1)
        z = self._net_phases(net_in)
        if extra.shape[1]:
            z = torch.cat([z, nn.functional.conv2d(_pad2(extra), self.bicubic, groups=extra.shape[1])], 1)
        return (self.mix(z) if self.mix is not None else z) + 0.5

    def forward(self, lq: torch.Tensor) -> torch.Tensor:
        x = lq.permute(0, 3, 1, 2).float()
        colour, extra = x[:, :self.n_colour], x[:, self.n_colour:]
        z = self._luma_path(colour, extra) if self.luma else self._plain_path(colour, extra)
        b, h, w = z.shape[0], z.shape[-2], z.shape[-1]
        s, c = self.scale, self.in_channels
        z = z.clamp(0, 255).to(torch.uint8).reshape(b, s, s * c, h, w)  # truncating x + 0.5: round half up
        z = z.permute(0, 1, 3, 4, 2).reshape(b, s, h, w * s * c)  # one axis moved inwards: (py, h, w, px, c)
        return z.transpose(1, 2).reshape(b, h * s, w * s, c)  # then whole rows swapped: (h, py, w, px, c)


def frame_onnx(model: ESPCN, in_channels: int, opset: int = 17) -> bytes:
    """Serialised ONNX ``FrameGraph``: input ``frames`` (B, h, w, C) uint8 -> ``sr`` uint8, dynamic B, h, w."""
    import copy

    net = copy.deepcopy(model).float().cpu().eval().to(memory_format=torch.contiguous_format)
    graph = FrameGraph(net, in_channels).eval()
    example = torch.zeros(1, 16, 16, in_channels, dtype=torch.uint8)
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(graph, (example,), buf, dynamo=False, opset_version=opset, input_names=["frames"],
                          output_names=["sr"], dynamic_axes={"frames": {0: "batch", 1: "height", 2: "width"},
                                                             "sr": {0: "batch", 1: "height_sr", 2: "width_sr"}})
    return buf.getvalue()


def ort_frame_runner(model: ESPCN, in_channels: int, device: torch.device, threads: int = 0):
    """``(B, h, w, C)`` uint8 tensor -> upscaled uint8 tensor on the same device, one ONNX Runtime call."""
    from espcn_lab.deploy.onnx import ort_session

    session = ort_session(frame_onnx(model, in_channels), device, threads)

    def run(lq: torch.Tensor) -> torch.Tensor:
        out = session.run(None, {"frames": np.ascontiguousarray(lq.cpu().numpy())})[0]
        return torch.from_numpy(out).to(lq.device)

    return run
