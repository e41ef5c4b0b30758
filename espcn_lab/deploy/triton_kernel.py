"""A fused Triton kernel for the whole ESPCN forward (CUDA; tested on CPU with ``TRITON_INTERPRET=1``).

One program takes a ``TH x TW`` grid of LR positions (halo included) of one image and computes all
three convolutions on it without writing any feature map out: conv1 as one ``(TH*TW, 32) x (32, 64)``
dot on an im2col patch loaded from the input, conv2 and conv3 as one dot per kernel tap on the
previous layer's features shifted by ``tl.gather`` (on chip: registers / shared memory), then the
pixel shuffle in the store's address arithmetic, so only the HR output reaches memory. Positions
outside the image are zeroed after each layer (the network's zero padding); the outer
``K2//2 + K3//2`` ring of each grid is recomputed by the neighbouring program (a 16x16 grid writes
its 12x12 centre: 1.8x the network's multiply-adds, traded for no feature-map traffic).

Supported: 3 convolutions (two hidden layers), odd kernels (paper 5-3-3), hidden widths that are
powers of two from 16 to 128 (paper 64/32), tanh or relu, 1 or 3 channels, any scale; fp32 (IEEE
dots) or fp16 operands with fp32 accumulation. Anything else is refused with one line; so is bf16
(the interpreter's bf16 dots are wrong even for a bare 16x16 product, so it could not be tested).

How the GPU figure is measured (left for a session with a GPU): ``espcn-lab bench x3 --device cuda
--backend triton --resolution 1080p --json t.json`` (network on a prepared Y plane, replayed from a
CUDA graph, CUDA-event median), in the same device call as ``../shared/tools/gpu_reference.py``'s
stock fp16 channels-last CUDA-graph row and ``pytest -m gpu tests/test_triton_kernel.py`` (parity and
the side-by-side timing). Goal on an H100/H200, x3 1080p: at most 0.10 ms a frame.
"""

from __future__ import annotations

import functools
import os

import torch

from espcn_lab.errors import UserError
from espcn_lab.model import ESPCN

ACTIVATIONS = ("tanh", "relu")


PRECISIONS = ("fp32", "fp16")


def _pow2(n: int, floor: int = 16) -> int:
    return max(floor, 1 << (int(n) - 1).bit_length())


def unsupported(model: ESPCN) -> str | None:
    """Why the fused kernel cannot run ``model``, or None."""
    convs = model.conv_layers()
    act = next((n for n, m in ((type(m).__name__.lower(), m) for m in model.body) if n != "conv2d"), "")
    if len(convs) != 3:
        return f"the triton backend runs 3-layer ESPCNs (two hidden layers), not {len(convs)} layers"
    if act not in ACTIVATIONS:
        return f"the triton backend supports {' or '.join(ACTIVATIONS)} activations, not {act or 'none'}"
    widths = [convs[0].out_channels, convs[1].out_channels]
    if any(w not in (16, 32, 64, 128) for w in widths):
        return f"the triton backend needs hidden widths that are powers of two from 16 to 128, not {widths}"
    if model.channels not in (1, 3):
        return f"the triton backend runs 1- or 3-channel models, not {model.channels}"
    return None


def pack(model: ESPCN) -> dict:
    """Weights as the kernel reads them: w1 (KP1, F1) im2col rows, w2 (K2*K2, F1, F2), w3 (K3*K3, F2, NP3)."""
    c1, c2, c3 = (conv.weight.detach().float().cpu() for conv in model.conv_layers())
    b1, b2, b3 = (conv.bias.detach().float().cpu() for conv in model.conv_layers())
    f1, f2, n3 = c1.shape[0], c2.shape[0], c3.shape[0]
    kp1, np3 = _pow2(c1[0].numel()), _pow2(n3)
    w1 = torch.zeros(kp1, f1)
    w1[:c1[0].numel()] = c1.reshape(f1, -1).T
    w2 = c2.permute(2, 3, 1, 0).reshape(-1, f1, f2)  # (tap, in, out)
    w3 = torch.zeros(c3.shape[2] * c3.shape[3], f2, np3)
    w3[..., :n3] = c3.permute(2, 3, 1, 0).reshape(-1, f2, n3)
    b3p = torch.zeros(np3)
    b3p[:n3] = b3
    w1, b1, w2, b2, w3, b3p = (t.contiguous() for t in (w1, b1, w2, b2, w3, b3p))  # raw pointers in the kernel
    return {"w1": w1, "b1": b1, "w2": w2, "b2": b2, "w3": w3, "b3": b3p,
            "k": (c1.shape[-1], c2.shape[-1], c3.shape[-1]), "f": (f1, f2), "kp1": kp1, "np3": np3}


def _interpret() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@functools.lru_cache(maxsize=2)
def _kernel(interpret: bool):
    """The jitted kernel; built on first use so that ``TRITON_INTERPRET`` is read when it is needed."""
    import triton
    import triton.language as tl

    def espcn_fused(x_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr, w3_ptr, b3_ptr, out_ptr, H, W,
                    C: tl.constexpr, S: tl.constexpr, K1: tl.constexpr, K2: tl.constexpr, K3: tl.constexpr,
                    F1: tl.constexpr, F2: tl.constexpr, KP1: tl.constexpr, NP3: tl.constexpr,
                    TH: tl.constexpr, TW: tl.constexpr, RELU: tl.constexpr, DT: tl.constexpr, PREC: tl.constexpr):
        M: tl.constexpr = K2 // 2 + K3 // 2  # ring of the grid whose outputs need features from outside it
        P: tl.constexpr = TH * TW
        b = tl.program_id(2)
        p = tl.arange(0, P)
        iy = tl.program_id(1) * (TH - 2 * M) - M + p // TW
        ix = tl.program_id(0) * (TW - 2 * M) - M + p % TW
        inside = (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W)
        # conv1: an im2col patch (P, KP1) straight from the input, zero outside the image
        k = tl.arange(0, KP1)
        kc, kr = k // (K1 * K1), k % (K1 * K1)
        yy = iy[:, None] + (kr // K1 - K1 // 2)[None, :]
        xx = ix[:, None] + (kr % K1 - K1 // 2)[None, :]
        ok = (k < C * K1 * K1)[None, :] & (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W)
        patch = tl.load(x_ptr + ((b * C + kc[None, :]) * H + yy) * W + xx, mask=ok, other=0.0)
        n1, n2, n3 = tl.arange(0, F1), tl.arange(0, F2), tl.arange(0, NP3)
        w1 = tl.load(w1_ptr + k[:, None] * F1 + n1[None, :])
        z1 = tl.dot(patch.to(DT), w1.to(DT), input_precision=PREC) + tl.load(b1_ptr + n1)[None, :]
        h1 = tl.maximum(z1, 0.0) if RELU else 1.0 - 2.0 / (tl.exp(2.0 * z1) + 1.0)
        h1 = tl.where(inside[:, None], h1, 0.0).to(DT)  # gathered and multiplied at the operand precision
        # conv2: per tap, the features of the shifted positions (gathered on chip) times that tap's weights
        acc2 = tl.zeros((P, F2), dtype=tl.float32)
        for t in tl.static_range(K2 * K2):
            src = tl.minimum(tl.maximum(p + (t // K2 - K2 // 2) * TW + (t % K2 - K2 // 2), 0), P - 1)
            g = tl.gather(h1, tl.broadcast_to(src[:, None], (P, F1)), axis=0)
            w2 = tl.load(w2_ptr + (t * F1 + n1[:, None]) * F2 + n2[None, :])
            acc2 += tl.dot(g, w2.to(DT), input_precision=PREC)
        z2 = acc2 + tl.load(b2_ptr + n2)[None, :]
        h2 = tl.maximum(z2, 0.0) if RELU else 1.0 - 2.0 / (tl.exp(2.0 * z2) + 1.0)
        h2 = tl.where(inside[:, None], h2, 0.0).to(DT)
        # conv3, the sub-pixel layer
        acc3 = tl.zeros((P, NP3), dtype=tl.float32)
        for t in tl.static_range(K3 * K3):
            src = tl.minimum(tl.maximum(p + (t // K3 - K3 // 2) * TW + (t % K3 - K3 // 2), 0), P - 1)
            g = tl.gather(h2, tl.broadcast_to(src[:, None], (P, F2)), axis=0)
            w3 = tl.load(w3_ptr + (t * F2 + n2[:, None]) * NP3 + n3[None, :])
            acc3 += tl.dot(g, w3.to(DT), input_precision=PREC)
        z3 = acc3 + tl.load(b3_ptr + n3)[None, :]
        # pixel shuffle in the addresses: channel c*S*S + py*S + px -> HR pixel (c, iy*S + py, ix*S + px)
        c, py, px = n3 // (S * S), (n3 % (S * S)) // S, n3 % S
        ty, tx = p // TW, p % TW
        own = inside & (ty >= M) & (ty < TH - M) & (tx >= M) & (tx < TW - M)
        oy, ox = iy[:, None] * S + py[None, :], ix[:, None] * S + px[None, :]
        dst = out_ptr + ((b * C + c[None, :]) * (H * S) + oy) * (W * S) + ox
        tl.store(dst, z3, mask=own[:, None] & (n3 < C * S * S)[None, :])

    return triton.jit(espcn_fused)


def forward(packed: dict, x: torch.Tensor, scale: int, relu: bool, precision: str = "fp32",
            tile: tuple[int, int] = (16, 16), num_warps: int = 8) -> torch.Tensor:
    """(B, C, H, W) float -> (B, C, H*s, W*s) float32, unclamped: the fused kernel on ``x``'s device."""
    import triton.language as tl

    (k1, k2, k3), (f1, f2) = packed["k"], packed["f"]
    b, c, h, w = x.shape
    th, tw = tile
    margin = k2 // 2 + k3 // 2
    if min(th, tw) <= 2 * margin or th * tw & (th * tw - 1):
        raise UserError(f"triton tile {tile} must be a power-of-two area wider than {2 * margin} pixels")
    out = torch.empty(b, c, h * scale, w * scale, device=x.device, dtype=torch.float32)
    grid = (-(-w // (tw - 2 * margin)), -(-h // (th - 2 * margin)), b)
    dt = {"fp32": tl.float32, "fp16": tl.float16}[precision]
    extra = {} if _interpret() else {"num_warps": num_warps}
    _kernel(_interpret())[grid](
        x.float().contiguous(), packed["w1"], packed["b1"], packed["w2"], packed["b2"], packed["w3"],
        packed["b3"], out, h, w, C=c, S=scale, K1=k1, K2=k2, K3=k3, F1=f1, F2=f2, KP1=packed["kp1"],
        NP3=packed["np3"], TH=th, TW=tw, RELU=relu, DT=dt, PREC="ieee" if precision == "fp32" else "tf32", **extra)
    return out


def triton_runner(model: ESPCN, device: torch.device, precision: str):
    """The ``make_runner`` contract for ``--backend triton``: CUDA only, refusing what the kernel cannot run."""
    import importlib.util

    if device.type != "cuda" and not _interpret():
        raise UserError("the triton backend needs a CUDA device; use --backend auto, torch or onnxruntime")
    if importlib.util.find_spec("triton") is None:
        raise UserError("the triton backend needs triton: pip install 'espcn-lab[triton]'")
    reason = unsupported(model)
    if reason:
        raise UserError(reason)
    if precision not in PRECISIONS:
        raise UserError(f"the triton backend runs {' or '.join(PRECISIONS)}, not {precision}; use --precision fp16")
    packed = {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in pack(model).items()}
    relu = any(isinstance(m, torch.nn.ReLU) for m in model.body)
    return lambda x: forward(packed, x, model.scale, relu, precision)
