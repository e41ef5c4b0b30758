"""``espcn-lab export``: ONNX with dynamic size, metadata, and parity with PyTorch."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import torch

from espcn_lab.deploy.export import parity
from espcn_lab.deploy.onnx import onnx_bytes
from tests._models import make_model, save_model


def test_export_cli_writes_a_dynamic_self_describing_model(tmp_path):
    import onnx
    import onnxruntime as ort

    model_path = save_model(tmp_path / "x3.safetensors", scale=3)
    out = tmp_path / "espcn_x3.onnx"
    done = subprocess.run([sys.executable, "-m", "espcn_lab.cli", "export", str(model_path), "--format", "onnx",
                           "-o", str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "parity vs PyTorch" in done.stdout
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["espcn_lab"])["config"]["model"]["scale"] == 3
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for h, w in [(7, 9), (20, 13)]:
        assert session.run(None, {"lq": np.zeros((2, 1, h, w), np.float32)})[0].shape == (2, 1, 3 * h, 3 * w)


def test_parity_is_close_and_detects_a_different_model():
    model, _ = make_model(2, features=(16, 8))
    data = onnx_bytes(model)
    assert parity(model, data)["psnr_db"] > 80
    other, _ = make_model(2, features=(16, 8), seed=1)
    assert parity(other, data)["psnr_db"] < 40


def test_unknown_format_is_one_line(tmp_path):
    model_path = save_model(tmp_path / "m.safetensors", scale=2, features=(8, 4))
    done = subprocess.run([sys.executable, "-m", "espcn_lab.cli", "export", str(model_path), "--format", "tflite",
                           "-o", str(tmp_path / "m.tflite")], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and "tflite" in done.stderr


def test_export_to_safetensors_round_trips_a_checkpoint(tmp_path, capsys):
    from espcn_lab.checkpoint import load_model
    from espcn_lab.config import load_config, to_dict
    from espcn_lab.model import build_model

    cfg = load_config(None, ["model.features=[8,4]", "model.scale=2"])
    model = build_model(cfg.model)
    ckpt = tmp_path / "run.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
                "espcn_lab": {"config": to_dict(cfg), "degradation": {"kind": "bicubic", "sigma": None}}}, ckpt)
    from espcn_lab.cli import main

    try:
        main(["export", str(ckpt), "--format", "safetensors", "-o", str(tmp_path / "x2.safetensors")])
    except SystemExit as done:
        assert done.code in (0, None)
    assert "parity vs PyTorch: max |diff| 0.00e+00" in capsys.readouterr().out
    loaded = load_model(str(tmp_path / "x2.safetensors"))
    assert loaded.config == cfg
    assert all(torch.equal(a, b) for a, b in zip(loaded.model.state_dict().values(), model.state_dict().values()))
