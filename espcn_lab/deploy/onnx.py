"""The network as an ONNX graph (dynamic batch, height and width) and ONNX Runtime sessions.

The exported graph is the bare network: input ``lq`` (B, C, H, W) float32 in [0, 1], output ``sr``
(B, C, H*s, W*s) float32, unclamped.
"""

from __future__ import annotations

import io
import warnings

import torch

from espcn_lab.errors import UserError
from espcn_lab.model import ESPCN


def ort_session(onnx_model: bytes, device: torch.device, threads: int = 0, spin: bool = False):
    """An ONNX Runtime session with all graph optimisations, on CUDA when asked and available.

    The intra-op threads do not busy-wait after a run unless ``spin``: spinning took the cores from
    whatever runs between two calls (the colour kernels of ``cpu_frame``, the video encoder, another
    session) and on a shared 2-core machine made the network itself slower (x3 1080p 90 -> 77 ms
    without it, same run).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    if not spin:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers = ["CPUExecutionProvider"]
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UserError("onnxruntime has no CUDA provider here; install onnxruntime-gpu or use --backend torch")
        providers.insert(0, "CUDAExecutionProvider")
    return ort.InferenceSession(onnx_model, options, providers=providers)


OPSET = 17


def onnx_bytes(model: ESPCN, opset: int = OPSET, metadata: dict[str, str] | None = None,
               phases: bool = False) -> bytes:
    """Serialised ONNX model of ``model`` (CPU, fp32, eval) with dynamic B, H, W.

    ``phases=True``: the network without its pixel shuffle, output ``phases`` (B, C*s*s, H, W) at LR.
    """
    import onnx

    net = clone_fp32(model)
    example = torch.rand(1, model.channels, 16, 16)
    buf = io.BytesIO()
    if phases:
        net, out_name, out_axes = torch.nn.Sequential(net.body, net.last), "phases", {0: "batch", 2: "height", 3: "width"}
    else:
        out_name, out_axes = "sr", {0: "batch", 2: "height_sr", 3: "width_sr"}
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated but exact and fast to run
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (example,), buf, dynamo=False, opset_version=opset, input_names=["lq"],
                          output_names=[out_name], dynamic_axes={"lq": {0: "batch", 2: "height", 3: "width"},
                                                                 out_name: out_axes})
    proto = onnx.load_from_string(buf.getvalue())
    for key, value in (metadata or {}).items():
        proto.metadata_props.add(key=key, value=value)
    return proto.SerializeToString()


def clone_fp32(model: ESPCN) -> ESPCN:
    import copy

    return copy.deepcopy(model).float().cpu().eval().to(memory_format=torch.contiguous_format)
