"""``export --format glsl``: the mpv user shader read back and run in numpy, its refusals, and (slow)
rendered by a real mpv under Xvfb with Mesa's software OpenGL, compared with ``Upscaler``.

The numpy run follows mpv's rules: textures named by ``//!SAVE`` and read through ``//!BIND``, edge-clamped
sampling, at most 15 bound textures a pass. It parses the weights out of the GLSL text and turns each
``espcn_act`` body into Python, so it checks the shader's own numbers and formulas, not the model's.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from espcn_lab.checkpoint import load_model
from espcn_lab.deploy import mpv as _mpv
from espcn_lab.deploy.glsl import MAX_BINDS, glsl_float, make_shader
from espcn_lab.deploy.infer import Upscaler
from espcn_lab.errors import UserError
from espcn_lab.evaluate.metrics import psnr_y
from espcn_lab.imaging.colour import rgb_to_y, rgb_to_ycbcr, to_uint8
from espcn_lab.model import ACTIVATIONS, ESPCN
from tests._models import save_model


# ---------------------------------------------------------------- reading the shader back
@dataclass
class Pass:
    directives: dict[str, list[str]] = field(default_factory=dict)
    body: str = ""

    def one(self, key: str) -> str | None:
        values = self.directives.get(key, [])
        assert len(values) <= 1, f"{key} given {len(values)} times"
        return values[0] if values else None


def parse(text: str) -> list[Pass]:
    """Split a user shader into passes: a run of //! lines starts one, the code up to the next run is its body."""
    passes: list[Pass] = []
    in_header = False
    for line in text.splitlines():
        m = re.match(r"^//!(\w+)\s*(.*)$", line)
        if m:
            if not in_header:
                passes.append(Pass())
            passes[-1].directives.setdefault(m[1], []).append(m[2].strip())
            in_header = True
        else:
            if passes:
                passes[-1].body += line + "\n"
            in_header = False
    return passes


_TERM = re.compile(r"acc \+= (vec4|mat2x4|mat3x4|mat4)\(([^)]*)\) \* \(m \* (\w+)_texOff\(vec2\(([^,]+), ([^)]+)\)\)"
                   r"(\.\w+)?\);")
_BIAS = re.compile(r"vec4 acc = vec4\(([^)]*)\);")
_PARTIAL = re.compile(r"vec4 acc = (\w+)_tex\(\1_pos\);")
_ACT = re.compile(r"vec4 espcn_act\(vec4 x\)\n\{\n(.*?)\n\}", re.S)


def floats(text: str) -> np.ndarray:
    return np.array([float(v) for v in text.split(",")], dtype=np.float32)


def glsl_function(body: str):
    """An ``espcn_act`` body (vec4 declarations and a return, GLSL built-ins) as a numpy function."""
    lines = [re.sub(r"^vec4 (\w+) =", r"\1 =", s.strip().rstrip(";")) for s in body.strip().splitlines()]
    env = {"exp": np.exp, "abs": np.abs, "sign": np.sign, "max": np.maximum, "min": np.minimum,
           "vec4": lambda *v: np.array(v, dtype=np.float32).reshape(4, 1, 1)}
    exec("def act(x):\n" + "\n".join("    " + s for s in lines), env)
    return env["act"]


def sample(tex: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """(C, H, W) read at (x + dx, y + dy) with the edge clamping of GL texture sampling."""
    _, h, w = tex.shape
    ys = np.clip(np.arange(h) + dy, 0, h - 1)
    xs = np.clip(np.arange(w) + dx, 0, w - 1)
    return tex[:, ys][:, :, xs]


def conv_pass(p: Pass, textures: dict[str, np.ndarray]) -> np.ndarray:
    """One feature pass in numpy: the bias (or partial sum), the masked taps, the activation."""
    bias, partial = _BIAS.search(p.body), _PARTIAL.search(p.body)
    h, w = textures["HOOKED"].shape[1:]
    acc = (floats(bias[1]).reshape(4, 1, 1) * np.ones((4, h, w), np.float32) if bias
           else textures[partial[1]].copy())
    for ctor, values, name, dx, dy, swizzle in _TERM.findall(p.body):
        assert name in p.directives["BIND"], f"{name} read but not bound"
        dx, dy = int(float(dx)), int(float(dy))
        ys, xs = np.arange(h)[:, None] + dy, np.arange(w)[None] + dx
        mask = ((ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)).astype(np.float32)
        n = {"": 4, ".x": 1, ".xy": 2, ".xyz": 3}[swizzle]
        cols = floats(values).reshape(n, 4)  # GLSL matrices are given column by column
        acc += np.einsum("co,chw->ohw", cols, mask * sample(textures[name], dx, dy)[:n])
    act = _ACT.search(p.body)
    return glsl_function(act[1])(acc) if act else acc


def shuffle_pass(p: Pass, textures: dict[str, np.ndarray], scale: int) -> np.ndarray:
    """The last pass: output (y, x) = channel (y % r) * r + (x % r) of LR pixel (y // r, x // r), clamped."""
    maps = np.concatenate([textures[name] for name in p.directives["BIND"]])
    _, h, w = maps.shape
    y, x = np.arange(h * scale)[:, None], np.arange(w * scale)[None]
    return np.clip(maps[(y % scale) * scale + x % scale, y // scale, x // scale], 0, 1)


def run_shader(text: str, luma: np.ndarray, scale: int) -> np.ndarray:
    """Execute the parsed shader on an (H, W) float32 luma plane in [0, 1]."""
    passes = parse(text)
    textures = {"HOOKED": np.pad(luma[None], ((0, 3), (0, 0), (0, 0)))}
    for p in passes[:-1]:
        assert p.one("HOOK") == "LUMA" and p.one("COMPONENTS") == "4" and len(p.directives["BIND"]) <= MAX_BINDS
        assert all(name in textures for name in p.directives["BIND"]), "a pass binds a texture not saved before it"
        textures[p.one("SAVE")] = conv_pass(p, textures).astype(np.float32)
    return shuffle_pass(passes[-1], textures, scale)


def rpn(expr: str, sizes: dict[str, tuple[float, float]]) -> float:
    """mpv's RPN size/condition expressions."""
    ops = {"+": float.__add__, "-": float.__sub__, "*": float.__mul__, "/": float.__truediv__,
           ">": lambda a, b: float(a > b), "<": lambda a, b: float(a < b)}
    stack: list[float] = []
    for tok in expr.split():
        if tok in ops:
            b, a = stack.pop(), stack.pop()
            stack.append(ops[tok](a, b))
        elif tok[0].isalpha():
            name, dim = tok.split(".")
            stack.append(float(sizes[name][0 if dim in ("w", "width") else 1]))
        else:
            stack.append(float(tok))
    assert len(stack) == 1
    return stack[0]


# ---------------------------------------------------------------- models
def lively(model: ESPCN, lq: torch.Tensor) -> ESPCN:
    """Rescale the last layer so the output on ``lq`` has mean 0.5, std 0.2: a random net otherwise clamps
    to a near-constant image that any shader would match."""
    with torch.no_grad():
        pre = model.last(model.body(lq))
        a = 0.2 / pre.std()
        model.last.weight.mul_(a)
        model.last.bias.copy_((model.last.bias - pre.mean()) * a + 0.5)
    return model


def seeded(scale: int, features, kernels, activation: str, variant: str = "", seed: int = 0) -> ESPCN:
    """A seeded model; ``variant`` swaps in modules the platform can also produce: learned per-channel
    PReLU slopes ("per_channel") or GELU's tanh form ("tanh_form")."""
    torch.manual_seed(seed)
    model = ESPCN(scale, 1, features, kernels, activation).eval()
    for i, conv in enumerate(model.conv_layers()[:-1]):
        if variant == "per_channel":
            model.body[2 * i + 1] = nn.PReLU(conv.out_channels)
            model.body[2 * i + 1].weight.data.uniform_(0.05, 0.5)
        elif variant == "tanh_form":
            model.body[2 * i + 1] = nn.GELU(approximate="tanh")
        elif activation == "prelu":
            model.body[2 * i + 1].weight.data.fill_(0.17)
    return model


ARCHITECTURES = {  # name -> (scale, features, kernels, activation, variant)
    "paper_x3_tanh": (3, (64, 32), (5, 3, 3), "tanh", ""),  # layer 2 reads 16 textures: 2 passes each
    "wide_x2_relu": (2, (128, 8), (3, 3, 3), "relu", ""),  # 32 input textures: 3 passes each
    "deep_x4_elu": (4, (6, 10, 3), (7, 1, 3, 5), "elu", ""),  # 4 layers, widths not multiples of 4
    "shallow_x2_gelu": (2, (8,), (9, 3), "gelu", ""),
    "x3_prelu_per_channel": (3, (12, 8), (5, 3, 3), "prelu", "per_channel"),
    "x3_gelu_tanh_form": (3, (8, 4), (5, 3, 3), "gelu", "tanh_form"),
    **{f"x3_{name}": (3, (8, 4), (5, 3, 3), name, "") for name in ACTIVATIONS},
}


def build(name: str, lq: torch.Tensor) -> ESPCN:
    scale, features, kernels, act, variant = ARCHITECTURES[name]
    return lively(seeded(scale, features, kernels, act, variant), lq)


# ---------------------------------------------------------------- unit tests
@pytest.mark.parametrize("name", sorted(ARCHITECTURES))
def test_numpy_run_of_the_shader_matches_pytorch(name):
    gen = torch.Generator().manual_seed(1)
    lq = torch.rand(1, 1, 13, 17, generator=gen)  # not square: a swapped x/y shows
    model = build(name, lq)
    with torch.no_grad():
        ref = model(lq).clamp(0, 1)[0, 0].numpy()
    got = run_shader(make_shader(model).text, lq[0, 0].numpy(), model.scale)
    assert ref.std() > 0.1, "the reference is near-constant: the comparison would prove nothing"
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() < 2e-5


def test_constants_read_back_to_the_models_tensors():
    model = load_model("x3").model
    passes = parse(make_shader(model).text)
    for layer, conv in enumerate(model.conv_layers(), 1):
        weight, bias = np.zeros(conv.weight.shape, np.float32), np.zeros(conv.out_channels, np.float32)
        k = conv.kernel_size[0]
        for p in passes:
            save = p.one("SAVE") or ""
            m = re.fullmatch(rf"ESPCN_L{layer}_(\d+)(_S\d+)?", save)
            if not m:
                continue
            g = int(m[1])
            if _BIAS.search(p.body):
                bias[4 * g:4 * g + 4] = floats(_BIAS.search(p.body)[1])[:len(bias[4 * g:4 * g + 4])]
            for ctor, values, name, dx, dy, swizzle in _TERM.findall(p.body):
                first = 0 if name == "HOOKED" else 4 * int(name.rsplit("_", 1)[1])
                cols = floats(values).reshape(-1, 4)
                block = weight[4 * g:4 * g + 4, first:first + len(cols), int(float(dy)) + k // 2, int(float(dx)) + k // 2]
                block[:] = cols.T[:block.shape[0]]
        assert np.array_equal(weight, conv.weight.detach().numpy()), f"layer {layer} weights"
        assert np.array_equal(bias, conv.bias.detach().numpy()), f"layer {layer} biases"


def test_float_literals_read_back_exactly():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 1, 2000), rng.normal(0, 1e-6, 200), [0.0, -0.0, 1.0, 3e-39, 1e30]])
    for v in values.astype(np.float32):
        text = glsl_float(v)
        assert np.float32(float(text)) == v and re.fullmatch(r"-?\d+(\.\d+)?(e[-+]\d+)?|-?\d+\.\d*", text), text


@pytest.mark.parametrize("features, kernels, scale, passes", [
    ((64, 32), (5, 3, 3), 2, 16 + 8 * 2 + 1 + 1),
    ((64, 32), (5, 3, 3), 3, 16 + 8 * 2 + 3 + 1),
    ((64, 32), (5, 3, 3), 4, 16 + 8 * 2 + 4 + 1),
    ((32,), (5, 3), 3, 8 + 3 + 1),
    ((32, 16), (5, 3, 3), 3, 8 + 4 + 3 + 1),
    ((128, 64), (5, 3, 3), 3, 32 + 16 * 3 + 3 * 2 + 1),  # 32 input textures -> 3 passes; 16 -> 2
    ((64, 64, 32), (5, 3, 3, 3), 3, 16 + 16 * 2 + 8 * 2 + 3 + 1),
    ((60, 8), (9, 5, 5), 3, 15 + 2 + 3 + 1),  # 15 textures still fit one pass
])
def test_pass_counts(features, kernels, scale, passes):
    shader = make_shader(ESPCN(scale, 1, features, kernels))
    assert shader.passes == passes == len(parse(shader.text))
    assert all(len(p.directives.get("BIND", [])) <= MAX_BINDS for p in parse(shader.text))


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_every_pass_runs_only_at_r_times_and_the_last_makes_r_times(scale):
    passes = parse(make_shader(ESPCN(scale, 1, (8, 4))).text)
    luma = (320.0, 240.0)
    for p in passes:
        when = p.one("WHEN")
        assert rpn(when, {"LUMA": luma, "OUTPUT": (scale * 320, scale * 240)}) == 1
        assert rpn(when, {"LUMA": luma, "OUTPUT": (scale * 320 + 100, scale * 240 + 7)}) == 1
        assert rpn(when, {"LUMA": luma, "OUTPUT": (scale * 320 - 1, scale * 240)}) == 0
        assert rpn(when, {"LUMA": luma, "OUTPUT": (scale * 320, (scale - 1) * 240)}) == 0
    last = passes[-1]
    assert rpn(last.one("WIDTH"), {"LUMA": luma}) == scale * 320
    assert rpn(last.one("HEIGHT"), {"LUMA": luma}) == scale * 240
    assert "clamp(v, 0.0, 1.0)" in last.body


def _message(model) -> str:
    with pytest.raises(UserError) as err:
        make_shader(model)
    assert "\n" not in str(err.value)
    return str(err.value)


def test_refusals_are_one_line():
    assert "channels=3" in _message(ESPCN(3, 3, (8, 4)))
    assert "scale 8" in _message(ESPCN(8, 1, (8, 4)))
    odd = ESPCN(3, 1, (8, 4))
    odd.body[1] = nn.Hardswish()
    assert "Hardswish" in _message(odd)
    dilated = ESPCN(3, 1, (8, 4))
    dilated.body[2] = nn.Conv2d(8, 4, 3, padding=2, dilation=2)
    assert "convolution 2" in _message(dilated)
    broken = ESPCN(3, 1, (8, 4))
    with torch.no_grad():
        broken.last.weight[0, 0, 0, 0] = float("nan")
    assert "non-finite" in _message(broken)
    assert "ESPCN" in _message(nn.Sequential(nn.Conv2d(1, 1, 3)))


def test_cli_writes_the_shader_and_refuses_an_rgb_model_in_one_line(tmp_path):
    out = tmp_path / "espcn_x3.glsl"
    done = subprocess.run([sys.executable, "-m", "espcn_lab.cli", "export", "x3", "--format", "glsl", "-o", str(out)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "36 passes" in done.stdout
    text = out.read_text()
    assert text.startswith("// ESPCN x3") and text.count("//!HOOK LUMA") == 36
    rgb = save_model(tmp_path / "rgb.safetensors", scale=2, features=(8, 4), channels=3)
    done = subprocess.run([sys.executable, "-m", "espcn_lab.cli", "export", str(rgb), "--format", "glsl",
                           "-o", str(tmp_path / "rgb.glsl")], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "channels=3" in done.stderr


def test_export_model_reports_passes(tmp_path):
    from espcn_lab.deploy.export import FORMATS, export_model

    result = export_model(load_model("x2"), tmp_path / "x2.glsl", "glsl")
    assert "glsl" in FORMATS
    assert result == {"path": str(tmp_path / "x2.glsl"), "bytes": (tmp_path / "x2.glsl").stat().st_size,
                      "format": "glsl", "passes": 34}


# ---------------------------------------------------------------- real mpv (slow)
@pytest.fixture(scope="module")
def display():
    why = _mpv.missing()
    if why:
        pytest.skip(why)
    with _mpv.xvfb() as name:
        yield name


@pytest.fixture(scope="module")
def frame(shared_data) -> np.ndarray:
    """(60, 80, 3) uint8 studio-range YCbCr of a real Set14 crop."""
    rgb = np.asarray(Image.open(shared_data / "Set14" / "barbara.png").convert("RGB"))
    return to_uint8(rgb_to_ycbcr(rgb[300:360, 40:120]))


def _render(display, tmp_path, frame, scale, shaders=(), vo="gpu", extra=(), tag="shot"):
    video = _mpv.write_y4m(tmp_path / "frame.y4m", frame)
    h, w = frame.shape[:2]
    rgb, log = _mpv.render(display, video, (w * scale, h * scale), tmp_path / f"{tag}.png", shaders, vo, extra)
    assert rgb.shape == (h * scale, w * scale, 3), f"mpv drew {rgb.shape}, not {scale}x the frame"
    return rgb, log


def _psnr_vs_upscaler(model: ESPCN, frame: np.ndarray, rgb: np.ndarray) -> float:
    """PSNR-Y of mpv's window against Upscaler on the frame's Y; limited-range video shows Y 16-235 only."""
    ours = np.clip(Upscaler(model, "cpu", "fp32", "torch")(frame[..., 0]), 16, 235)
    return psnr_y(rgb_to_y(rgb), ours)


def _write_shader(model: ESPCN, path: Path) -> Path:
    path.write_text(make_shader(model).text)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("name, vo", [("x2", "gpu"), ("x3", "gpu"), ("x4", "gpu"), ("x3", "gpu-next")])
def test_mpv_draws_what_upscaler_computes(display, tmp_path, frame, name, vo):
    model = load_model(name).model
    shader = _write_shader(model, tmp_path / f"espcn_{name}.glsl")
    with_shader, _ = _render(display, tmp_path, frame, model.scale, [shader], vo, tag="espcn")
    plain, _ = _render(display, tmp_path, frame, model.scale, (), vo, tag="plain")
    got, without = _psnr_vs_upscaler(model, frame, with_shader), _psnr_vs_upscaler(model, frame, plain)
    print(f"\nmpv vo={vo} {name}: PSNR-Y vs Upscaler {got:.2f} dB with the shader, {without:.2f} dB without")
    assert got >= 45
    assert without < 40, "mpv's own scaling is as close: the comparison cannot tell the shader ran"


@pytest.mark.slow
def test_mpv_luma_texture_holds_code_over_255(display, tmp_path, frame):
    """A probe hook squares LUMA: the picture shows 255 (Y/255)^2 only if LUMA = Y/255 (not (Y-16)/219)."""
    probe = tmp_path / "square.glsl"
    probe.write_text("//!HOOK LUMA\n//!BIND HOOKED\n//!DESC probe: LUMA squared\n\n"
                     "vec4 hook()\n{\n    float v = HOOKED_texOff(vec2(0.0)).x;\n    return vec4(v * v, 0.0, 0.0, 1.0);\n}\n")
    rgb, _ = _render(display, tmp_path, frame, 1, [probe])
    y = frame[..., 0].astype(np.float64)
    as_code = np.clip(255 * (y / 255) ** 2, 16, 235)
    as_expanded = np.clip(16 + 219 * ((y - 16) / 219) ** 2, 16, 235)
    seen = rgb_to_y(rgb)
    assert psnr_y(seen, as_code) >= 45
    assert psnr_y(seen, as_expanded) < 35


@pytest.mark.slow
def test_mpv_skips_the_shader_below_r_times(display, tmp_path, frame):
    model = load_model("x3").model
    shader = _write_shader(model, tmp_path / "espcn_x3.glsl")
    trace = ["--msg-level=vo/gpu=trace"]
    small, log = _render(display, tmp_path, frame, 2, [shader], extra=trace, tag="small")
    plain, _ = _render(display, tmp_path, frame, 2, tag="plain")
    assert log.count("Skipping hook on LUMA due to condition") >= 36
    assert psnr_y(rgb_to_y(small), rgb_to_y(plain)) > 45
    _, log = _render(display, tmp_path, frame, 3, [shader], extra=trace, tag="big")
    assert "Skipping hook on LUMA due to condition" not in log


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(set(ARCHITECTURES) - {"paper_x3_tanh"}))
def test_mpv_draws_other_architectures(display, tmp_path, frame, name):
    lq = torch.from_numpy(frame[..., 0].astype(np.float32) / 255)[None, None]
    model = build(name, lq)
    shader = _write_shader(model, tmp_path / f"{name}.glsl")
    rgb, _ = _render(display, tmp_path, frame, model.scale, [shader])
    got = _psnr_vs_upscaler(model, frame, rgb)
    print(f"\nmpv {name}: PSNR-Y vs Upscaler {got:.2f} dB")
    assert got >= 45
