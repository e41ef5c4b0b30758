"""int8 ONNX Runtime quantisation of the network on CPU: speed against fp32 ORT in the same run, Set5 PSNR cost.

Quantises ``export.onnx_bytes(model)`` with ``onnxruntime.quantization`` (static, calibrated on
T91 LR luma; QDQ and QOperator formats, u8s8 / u8u8 / reduce-range; and dynamic), scores each
on Set5 (PSNR-Y, shave = scale, the ``evaluate`` protocol) and times the network on the LR plane
of a 1920x1080 output frame, interleaved with fp32 so load hits all alike. Writes
``benchmarks/results/int8_cpu_x{S}.json``. Usage:
``python benchmarks/int8_cpu.py MODEL [--runs 6]`` (MODEL: a trained .ckpt / .safetensors).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from espcn_lab.checkpoint import load_model
from espcn_lab.deploy.bench import machine
from espcn_lab.deploy.onnx import onnx_bytes, ort_session
from espcn_lab.evaluate.metrics import psnr_y
from espcn_lab.evaluate.protocol import make_eval_pair
from espcn_lab.imaging.read import iter_hr_images
from espcn_lab.paths import shared_data

DATA = shared_data()
RESULTS = Path(__file__).parent / "results"


def quantised(fp32: Path, calibration: list[np.ndarray], tmp: Path) -> dict[str, Path]:
    """Every int8 variant of ``fp32`` worth timing, by name."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter(calibration)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {"lq": x}

    s8, u8 = QuantType.QInt8, QuantType.QUInt8
    static = {"static_qdq_u8s8": (QuantFormat.QDQ, s8, False), "static_qop_u8s8": (QuantFormat.QOperator, s8, False),
              "static_qop_u8u8": (QuantFormat.QOperator, u8, False),
              "static_qop_u8s8_reduce_range": (QuantFormat.QOperator, s8, True)}
    out = {}
    for name, (fmt, weights, reduce) in static.items():
        out[name] = tmp / f"{name}.onnx"
        quantize_static(fp32, out[name], Reader(), quant_format=fmt, per_channel=True, reduce_range=reduce,
                        activation_type=u8, weight_type=weights)
    out["dynamic_u8"] = tmp / "dynamic.onnx"
    quantize_dynamic(fp32, out["dynamic_u8"], weight_type=u8)
    return out


def set5_psnr(session, pairs, scale: int) -> float:
    scores = []
    for pair in pairs:
        out = session.run(None, {"lq": pair.lq[None, None].astype(np.float32) / 255.0})[0][0, 0]
        scores.append(psnr_y(np.floor(np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8), pair.gt_y, scale))
    return float(np.mean(scores))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--runs", type=int, default=6)
    args = parser.parse_args()
    loaded = load_model(args.model)
    model, s = loaded.model.eval(), loaded.model.scale
    calibration = [make_eval_pair(n, hr, s, loaded.degradation).lq[None, None].astype(np.float32) / 255.0
                   for i, (n, hr) in enumerate(iter_hr_images(DATA / "T91")) if i % 6 == 0]
    pairs = [make_eval_pair(n, hr, s, loaded.degradation) for n, hr in iter_hr_images(DATA / "Set5")]
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        fp32.write_bytes(onnx_bytes(model))
        paths = {"fp32": fp32, **quantised(fp32, calibration, Path(tmp))}
        sessions = {name: ort_session(p.read_bytes(), torch.device("cpu")) for name, p in paths.items()}
    x = np.random.default_rng(0).random((1, 1, 1080 // s, 1920 // s), dtype=np.float32)
    times: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(args.runs + 1):  # interleaved; the first round is the warm-up
        for name, session in sessions.items():
            t0 = time.perf_counter()
            session.run(None, {"lq": x})
            times[name].append((time.perf_counter() - t0) * 1e3)
    ref = set5_psnr(sessions["fp32"], pairs, s)
    rows = {}
    for name, session in sessions.items():
        ms = statistics.median(times[name][1:])
        psnr = ref if name == "fp32" else set5_psnr(session, pairs, s)
        rows[name] = {"ms": round(ms, 1), "fp32_over_this": round(statistics.median(times["fp32"][1:]) / ms, 2),
                      "set5_psnr_y": round(psnr, 3), "psnr_cost_db": round(ref - psnr, 3)}
    report = {"model": args.model, "scale": s, "output": "1920x1080", "machine": machine(torch.device("cpu")), "rows": rows}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"int8_cpu_x{s}.json").write_text(json.dumps(report, indent=1))
    print(f"{report['machine']['cpu']}, {report['machine']['threads']} threads; x{s} to 1920x1080, network only\n")
    print("| variant | ms | fp32/variant | Set5 PSNR-Y | cost (dB) |\n|---|---|---|---|---|")
    for name, r in rows.items():
        print(f"| {name} | {r['ms']:.0f} | {r['fp32_over_this']} | {r['set5_psnr_y']:.3f} | {r['psnr_cost_db']:.3f} |")


if __name__ == "__main__":
    main()
