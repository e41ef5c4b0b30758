"""An ESPCN as an mpv / libplacebo user shader: ``espcn-lab export MODEL --format glsl``.

Owns the translation of a Y-only (channels=1) ``ESPCN`` into ``//!HOOK LUMA`` passes, and the list of
what it refuses. Every convolution and its activation is written out from the model's own tensors
(each float32 printed with 9 significant digits, which reads back to the same float32). Feature maps
are packed four channels per RGBA texture (``//!SAVE`` / ``//!BIND``, ``//!COMPONENTS 4``), one pass
per texture. A pass binds at most 15 textures (mpv gives each bound texture a vertex attribute besides
the position, and OpenGL promises 16 attributes), so a layer with more than 60 input channels adds
them up over several passes through partial-sum textures. Convolutions are
zero-padded: a tap outside the LR image is multiplied by 0, because texture sampling clamps to the
edge. The last pass runs at r times the LUMA size, takes channel (y % r) * r + (x % r) of LR pixel
(y // r, x // r) (PixelShuffle's order) and clamps to [0, 1]. Every pass has a ``//!WHEN`` so the
shader only runs when the output is at least r times the LUMA size both ways.

The LUMA texture of 8-bit video holds the Y code value / 255, the network's own input.
GELU (exact, erf form) uses the erf of Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7); a
``GELU(approximate="tanh")`` gets the tanh form. tanh is written as sign(x)(1 - e)/(1 + e) with
e = exp(-2|x|), which cannot overflow and needs no GLSL 1.30 built-in.

Imports torch, numpy, espcn_lab.model and espcn_lab.errors only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from espcn_lab.errors import UserError
from espcn_lab.model import ESPCN

MAX_BINDS = 15  # textures one pass may bind: mpv's SHADER_MAX_BINDS is 16, but a 16th fails to link on
# a GL with 16 vertex attributes (llvmpipe: "insufficient contiguous locations ... vertex_texcoord15")
_ERF_P, _ERF_A = 0.3275911, (0.254829592, -0.284496736, 1.421413741, -1.453152027, 1.061405429)


@dataclass(frozen=True)
class Shader:
    text: str
    passes: int


@dataclass(frozen=True)
class _Texture:
    name: str
    channels: int  # valid channels (1..4); the rest are 0
    first: int  # index of its first channel in the layer's feature maps


def glsl_float(x: float) -> str:
    """A float32 as a GLSL float literal that reads back to the same float32."""
    text = f"{float(np.float32(x)):.9g}"
    return text if any(c in text for c in ".en") else text + ".0"


def _vec(values) -> str:
    return ", ".join(glsl_float(v) for v in values)


def _refuse(model: object) -> None:
    """One readable UserError for anything an mpv LUMA hook of this form cannot express."""
    if not isinstance(model, ESPCN):
        raise UserError(f"glsl export needs an espcn-lab ESPCN model, got {type(model).__name__}")
    if model.channels != 1:
        raise UserError(f"glsl export handles Y-only models (channels=1); this one has channels={model.channels} "
                        "(an mpv LUMA hook sees the luma plane only)")
    if model.scale < 1 or (model.scale**2 + 3) // 4 > MAX_BINDS:
        raise UserError(f"glsl export handles scales up to 7 (the shuffle pass binds ceil(r*r/4) <= {MAX_BINDS} "
                        f"textures); this model has scale {model.scale}")
    mods = list(model.body)
    if any(not isinstance(c, nn.Conv2d) for c in mods[0::2]) or len(mods) % 2:
        raise UserError("glsl export needs model.body to alternate Conv2d and activation modules")
    for i, conv in enumerate(model.conv_layers(), 1):
        k = conv.kernel_size[0]
        if (conv.kernel_size != (k, k) or k % 2 == 0 or conv.stride != (1, 1) or conv.dilation != (1, 1)
                or conv.groups != 1 or conv.padding != (k // 2, k // 2) or conv.padding_mode != "zeros"
                or conv.bias is None):
            raise UserError(f"glsl export: convolution {i} is not a biased, odd square, stride-1, zero-padded "
                            f"'same' convolution ({conv})")
        if not (np.isfinite(_np(conv.weight)).all() and np.isfinite(_np(conv.bias)).all()):
            raise UserError(f"glsl export: convolution {i} has non-finite weights")
    if model.last.out_channels != model.scale**2:
        raise UserError(f"glsl export: the last layer has {model.last.out_channels} outputs, not scale^2")
    for act in mods[1::2]:
        _activation(act, 0)  # raises for an activation with no GLSL form


def _np(t) -> np.ndarray:
    return t.detach().cpu().float().numpy()


def _activation(act: nn.Module, group: int) -> str:
    """GLSL body (``return ...;``) of ``vec4 espcn_act(vec4 x)`` for output channels 4g..4g+3."""
    if isinstance(act, nn.Tanh):
        return "vec4 e = exp(-2.0 * abs(x));\n    return sign(x) * (1.0 - e) / (1.0 + e);"
    if isinstance(act, nn.ReLU):
        return "return max(x, 0.0);"
    if isinstance(act, nn.LeakyReLU):
        return f"return max(x, 0.0) + {glsl_float(act.negative_slope)} * min(x, 0.0);"
    if isinstance(act, nn.PReLU):
        slopes = _np(act.weight)
        four = np.resize(slopes, 4) if slopes.size == 1 else np.pad(slopes, (0, 4))[4 * group:4 * group + 4]
        return f"return max(x, 0.0) + vec4({_vec(four)}) * min(x, 0.0);"
    if isinstance(act, nn.ELU):
        return f"return max(x, 0.0) + {glsl_float(act.alpha)} * (exp(min(x, 0.0)) - 1.0);"
    if isinstance(act, nn.SiLU):
        return "return x / (1.0 + exp(min(-x, 80.0)));"
    if isinstance(act, nn.GELU) and act.approximate == "tanh":
        return ("vec4 u = 0.7978845608 * (x + 0.044715 * x * x * x);\n    vec4 e = exp(-2.0 * abs(u));\n"
                "    return 0.5 * x * (1.0 + sign(u) * (1.0 - e) / (1.0 + e));")
    if isinstance(act, nn.GELU):
        a1, a2, a3, a4, a5 = (glsl_float(a) for a in _ERF_A)
        return ("vec4 z = abs(x) * 0.707106781;\n"
                f"    vec4 t = 1.0 / (1.0 + {glsl_float(_ERF_P)} * z);\n"
                f"    vec4 p = t * ({a1} + t * ({a2} + t * ({a3} + t * ({a4} + t * {a5}))));\n"
                "    vec4 erf_z = 1.0 - p * exp(-z * z);\n"
                "    return 0.5 * x * (1.0 + sign(x) * erf_z);")
    raise UserError(f"glsl export: activation {type(act).__name__} has no GLSL form "
                    "(supported: tanh, relu, leaky_relu, prelu, elu, gelu, silu)")


def _textures(layer: int, channels: int) -> list[_Texture]:
    return [_Texture(f"ESPCN_L{layer}_{g}", min(4, channels - 4 * g), 4 * g) for g in range((channels + 3) // 4)]


def _chunks(inputs: list[_Texture]) -> list[list[_Texture]]:
    """Split a layer's inputs into near-equal runs that fit one pass each: <= MAX_BINDS textures alone,
    or <= MAX_BINDS - 1 beside the previous run's partial sum."""
    n = len(inputs)
    parts = 1 if n <= MAX_BINDS else -(-n // (MAX_BINDS - 1))
    bounds = np.linspace(0, n, parts + 1).round().astype(int)
    return [inputs[a:b] for a, b in zip(bounds[:-1], bounds[1:])]


def _when(scale: int) -> str:
    bound = f"{scale - 0.001:.3f}"
    return f"OUTPUT.w LUMA.w / {bound} > OUTPUT.h LUMA.h / {bound} > *"


def _tap_term(weight: np.ndarray, group: int, tex: _Texture, ky: int, kx: int) -> str:
    """``acc += ...`` for one input texture at one tap: its 4 x n weights times the masked sample."""
    k = weight.shape[-1]
    rows = np.zeros((4, tex.channels), dtype=np.float32)
    block = weight[4 * group:4 * group + 4, tex.first:tex.first + tex.channels, ky, kx]
    rows[:block.shape[0]] = block
    ctor, swizzle = {1: ("vec4", ".x"), 2: ("mat2x4", ".xy"), 3: ("mat3x4", ".xyz"), 4: ("mat4", "")}[tex.channels]
    offset = f"vec2({glsl_float(kx - k // 2)}, {glsl_float(ky - k // 2)})"
    return f"    acc += {ctor}({_vec(rows.T.ravel())}) * (m * {tex.name}_texOff({offset}){swizzle});"


def _conv_pass(weight: np.ndarray, bias: np.ndarray | None, group: int, inputs: list[_Texture],
               partial: str | None, act: str | None, save: str, header: list[str]) -> str:
    """One pass: 4 output channels of one convolution over ``inputs`` (plus a partial sum), saved as ``save``."""
    k = weight.shape[-1]
    binds = [t.name for t in inputs] + ([partial] if partial else [])
    ref = inputs[0].name
    if bias is not None:
        four = np.zeros(4, dtype=np.float32)
        four[:len(bias[4 * group:4 * group + 4])] = bias[4 * group:4 * group + 4]
        start = f"vec4({_vec(four)})"
    else:
        start = f"{partial}_tex({partial}_pos)"
    lines = [*header, *(f"//!BIND {b}" for b in binds), f"//!SAVE {save}", "//!COMPONENTS 4", "",
             "float espcn_inside(vec2 p, vec2 size)\n{\n"
             "    return float(p.x > 0.0 && p.y > 0.0 && p.x < size.x && p.y < size.y);\n}", ""]
    if act is not None:
        lines += ["vec4 espcn_act(vec4 x)\n{", f"    {act}", "}", ""]
    lines += ["vec4 hook()\n{", f"    vec2 px = {ref}_pos * {ref}_size;  // this LR pixel's centre, (i + 0.5, j + 0.5)",
              f"    vec4 acc = {start};", "    float m;  // 1 inside the image, 0 for a tap in the zero padding"]
    for ky in range(k):
        for kx in range(k):
            lines.append(f"    m = espcn_inside(px + vec2({glsl_float(kx - k // 2)}, {glsl_float(ky - k // 2)}), "
                         f"{ref}_size);")
            lines += [_tap_term(weight, group, tex, ky, kx) for tex in inputs]
    lines += ["    return espcn_act(acc);" if act is not None else "    return acc;", "}", ""]
    return "\n".join(lines)


def _layer_passes(model: ESPCN, index: int, conv: nn.Conv2d, act: nn.Module | None,
                  inputs: list[_Texture]) -> tuple[list[str], list[_Texture]]:
    """All passes of convolution ``index`` (1-based); returns them and the textures they leave."""
    weight, bias = _np(conv.weight), _np(conv.bias)
    outputs, chunks = _textures(index, conv.out_channels), _chunks(inputs)
    kind = type(act).__name__ if act is not None else "sub-pixel layer"
    passes = []
    for g, out in enumerate(outputs):
        partial = None
        for j, chunk in enumerate(chunks):
            last = j == len(chunks) - 1
            save = out.name if last else f"{out.name}_S{j}"
            part = f", inputs {chunk[0].first}-{chunk[-1].first + chunk[-1].channels - 1}" if len(chunks) > 1 else ""
            header = [f"//!DESC ESPCN x{model.scale} conv {index}/{len(model.conv_layers())} "
                      f"channels {out.first}-{out.first + out.channels - 1}{part} ({kind})",
                      "//!HOOK LUMA", f"//!WHEN {_when(model.scale)}"]
            code = _activation(act, g) if act is not None and last else None
            passes.append(_conv_pass(weight, bias if j == 0 else None, g, chunk, partial, code, save, header))
            partial = save
    return passes, outputs


def _shuffle_pass(scale: int, inputs: list[_Texture]) -> str:
    """The periodic shuffle to r times the LUMA size, clamped to [0, 1]."""
    r, ref = glsl_float(scale), inputs[0].name
    reads = "\n        + ".join(f"dot({t.name}_tex(at), espcn_pick(c, {glsl_float(t.first)}))" for t in inputs)
    return "\n".join([
        f"//!DESC ESPCN x{scale} periodic shuffle, clamp to [0, 1]", "//!HOOK LUMA", f"//!WHEN {_when(scale)}",
        *(f"//!BIND {t.name}" for t in inputs), f"//!WIDTH LUMA.w {scale} *", f"//!HEIGHT LUMA.h {scale} *",
        "//!COMPONENTS 1", "",
        "vec4 espcn_pick(float c, float first)\n{\n"
        "    return vec4(equal(vec4(c - first), vec4(0.0, 1.0, 2.0, 3.0)));\n}", "",
        "vec4 hook()\n{",
        f"    vec2 o = floor({ref}_pos * {ref}_size * {r});  // this output pixel (x, y)",
        f"    vec2 lr = floor((o + 0.5) / {r});  // its LR pixel (x // r, y // r)",
        f"    vec2 sub = o - lr * {r};  // (x % r, y % r)",
        f"    float c = sub.y * {r} + sub.x;  // PixelShuffle's channel",
        f"    vec2 at = (lr + 0.5) * {ref}_pt;",
        f"    float v = {reads};",
        "    return vec4(clamp(v, 0.0, 1.0), 0.0, 0.0, 1.0);", "}", ""])


def make_shader(model: ESPCN, source: str = "") -> Shader:
    """The whole user shader for ``model``; ``source`` (e.g. the model's file) goes into the header comment."""
    _refuse(model)
    convs, acts = model.conv_layers(), list(model.body)[1::2] + [None]
    widths = [c.out_channels for c in convs[:-1]]
    kernels = [c.kernel_size[0] for c in convs]
    names = sorted({type(a).__name__ for a in acts if a is not None})
    head = [f"// ESPCN x{model.scale} (Shi et al., CVPR 2016) for mpv / libplacebo, written by espcn-lab export.",
            f"// features {widths}, kernels {kernels}, activation {', '.join(names) or 'none'}"
            + (f"; weights from {source}" if source else ""),
            "// Runs on the luma plane (8-bit: Y code / 255) when the output is at least "
            f"{model.scale}x the video in both directions.", ""]
    passes, inputs = [], [_Texture("HOOKED", 1, 0)]
    for i, (conv, act) in enumerate(zip(convs, acts), 1):
        layer, inputs = _layer_passes(model, i, conv, act, inputs)
        passes += layer
    passes.append(_shuffle_pass(model.scale, inputs))
    return Shader("\n".join(head) + "\n" + "\n".join(passes), len(passes))
