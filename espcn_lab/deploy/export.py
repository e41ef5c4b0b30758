"""``espcn-lab export``: ONNX (dynamic batch, height and width) or safetensors, checked against PyTorch,
or an mpv / libplacebo user shader (``glsl``, written by ``deploy.glsl``).

The resolved config travels as ONNX metadata (``espcn_lab`` = JSON of config and degradation) so the
file is self-describing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch

from espcn_lab.checkpoint import LoadedModel
from espcn_lab.config import to_dict
from espcn_lab.deploy.onnx import OPSET, clone_fp32, onnx_bytes
from espcn_lab.errors import UserError
from espcn_lab.files import write_bytes_atomic
from espcn_lab.model import ESPCN

FORMATS = ("onnx", "safetensors", "glsl")


def parity(model: ESPCN, onnx_model: bytes, sizes: tuple[tuple[int, int], ...] = ((37, 53), (64, 48)),
           seed: int = 0) -> dict[str, float]:
    """Run ONNX Runtime and PyTorch fp32 on seeded inputs of several sizes; worst max |diff| and PSNR (dB, 0-255)."""
    from espcn_lab.deploy.onnx import ort_session

    session = ort_session(onnx_model, torch.device("cpu"))
    net = clone_fp32(model)
    gen = torch.Generator().manual_seed(seed)
    worst, worst_mse = 0.0, 0.0
    for h, w in sizes:
        x = torch.rand(2, model.channels, h, w, generator=gen)
        with torch.inference_mode():
            ref = net(x).clamp(0, 1).numpy() * 255.0
        got = np.clip(session.run(None, {"lq": x.numpy()})[0], 0, 1) * 255.0
        if got.shape != ref.shape:
            raise UserError(f"ONNX output shape {got.shape} != PyTorch {ref.shape} at input {h}x{w}")
        worst = max(worst, float(np.abs(got - ref).max()))
        worst_mse = max(worst_mse, float(np.mean((got - ref) ** 2)))
    psnr = math.inf if worst_mse == 0 else 10 * math.log10(255.0**2 / worst_mse)
    return {"max_abs_diff_255": worst, "psnr_db": psnr}


def export_model(loaded: LoadedModel, path: str | Path, fmt: str = "onnx", opset: int = OPSET,
                 check: bool = True) -> dict:
    """Write ``loaded`` to ``path`` in ``fmt``; return {path, bytes, format, parity? | passes}.

    ONNX parity must reach 60 dB. A GLSL shader has no runtime here to check it against (``check`` does
    not apply); tests/test_glsl.py renders it through mpv.
    """
    if fmt not in FORMATS:
        raise UserError(f"unknown export format {fmt!r}; choose from {', '.join(FORMATS)}")
    if fmt == "glsl":
        return _export_glsl(loaded, Path(path))
    if fmt == "safetensors":  # weights + config, no code: how shipped models (x2, x3, x4) are stored
        from espcn_lab.checkpoint import load_model, save_safetensors

        path = save_safetensors(loaded.model, loaded.config, loaded.degradation, path)
        result = {"path": str(path), "bytes": path.stat().st_size, "format": fmt}
        if check:
            again = load_model(str(path)).model
            same = all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(), again.state_dict().values()))
            result["parity"] = {"max_abs_diff_255": 0.0 if same else math.inf, "psnr_db": math.inf if same else 0.0}
            if not same:
                raise UserError(f"{path}: weights read back differ from the model's")
        return result
    meta = {"espcn_lab": json.dumps({"config": to_dict(loaded.config), "degradation": loaded.degradation.to_dict()}),
            "scale": str(loaded.model.scale)}
    data = onnx_bytes(loaded.model, opset, meta)
    path = Path(path)
    result: dict = {"path": str(path), "bytes": len(data), "format": fmt, "opset": opset}
    if check:  # before anything is written: a failed check leaves no file behind
        result["parity"] = parity(loaded.model, data)
        if result["parity"]["psnr_db"] < 60:
            raise UserError(f"{path}: exported model disagrees with PyTorch ({result['parity']}); not written")
    write_bytes_atomic(path, data)
    return result


def _export_glsl(loaded: LoadedModel, path: Path) -> dict:
    from espcn_lab.deploy.glsl import make_shader

    shader = make_shader(loaded.model, source=Path(loaded.source).name)
    write_bytes_atomic(path, shader.text.encode())
    return {"path": str(path), "bytes": path.stat().st_size, "format": "glsl", "passes": shader.passes}
