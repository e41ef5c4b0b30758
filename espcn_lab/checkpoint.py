"""On-disk model formats: Lightning checkpoints (read weights-only) and safetensors files.

A model travels with its resolved config so ``eval``, ``upscale``, ``bench`` and ``export`` need
nothing else. Loading never unpickles code: Lightning ``.ckpt`` files are read with
``torch.load(weights_only=True)``; ``.safetensors`` files keep the config as JSON metadata.
The names ``x2``, ``x3``, ``x4`` resolve to the models shipped in ``espcn_lab/weights``.

Contracts:
- Lightning checkpoint: ``ckpt["state_dict"]`` holds the ESPCN weights under the prefix ``model.``
  and ``ckpt["espcn_lab"] = {"config": <to_dict(cfg)>, "degradation": {"kind", "sigma"}}``.
- safetensors: tensors are the ESPCN ``state_dict``; metadata ``{"espcn_lab": json.dumps(same dict)}``.
- A network trained re-parameterised (``model.reparam: ecb``) has its branches in the ``.ckpt`` (so a run
  resumes); every model loaded from it, and every safetensors file, is the folded plain network with
  ``model.reparam: none`` in its config: what inference, export and speed see is the paper's network.
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from espcn_lab.config import Config, from_dict, to_dict
from espcn_lab.errors import ConfigError, UserError
from espcn_lab.imaging.degrade import DegradationSpec
from espcn_lab.model import ESPCN, build_model

WEIGHTS_DIR = Path(__file__).parent / "weights"
SHIPPED = ("x2", "x3", "x4")


@dataclass
class LoadedModel:
    """A ready model with the config and degradation it was trained with."""

    model: ESPCN
    config: Config
    degradation: DegradationSpec
    source: str


def save_safetensors(model: ESPCN, cfg: Config, degradation: DegradationSpec, path: str | Path) -> Path:
    """Write weights plus config/degradation metadata to one ``.safetensors`` file (atomically: a failed
    write leaves any file already at ``path`` as it was)."""
    from safetensors.torch import save_file

    from espcn_lab.files import atomic_output

    model, cfg = model.folded(), plain_config(cfg)
    meta = {"espcn_lab": json.dumps({"config": to_dict(cfg), "degradation": degradation.to_dict()})}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_output(path) as tmp:
        save_file(state, str(tmp), metadata=meta)
    return Path(path)


def plain_config(cfg: Config) -> Config:
    """The config of the folded network: the same, with ``model.reparam: none``."""
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, reparam="none"))


def _resolve(spec: str) -> Path:
    if spec in SHIPPED:
        path = WEIGHTS_DIR / f"{spec}.safetensors"
        if not path.is_file():
            raise UserError(f"shipped model {spec} is not installed ({path} missing)")
        return path
    path = Path(spec)
    if not path.is_file():
        raise UserError(f"model not found: {spec} (give a .ckpt/.safetensors path or one of {', '.join(SHIPPED)})")
    return path


def _from_payload(payload: Any, state: dict[str, torch.Tensor], path: Path) -> LoadedModel:
    """Check the metadata and the tensors against each other before a network is built (metadata that
    describes a huge network must not allocate it), then load; UserError naming what is wrong."""
    if not isinstance(payload, dict) or not isinstance(payload.get("config"), dict):
        raise UserError(f"{path}: not an espcn-lab model (its metadata holds no config mapping)")
    try:
        cfg = from_dict(payload["config"])
        degradation = DegradationSpec(**payload.get("degradation", {}))
    except (ConfigError, TypeError) as err:
        raise UserError(f"{path}: its stored config is not valid ({err})") from None
    with torch.device("meta"):  # shapes only, no memory
        expected = {k: tuple(v.shape) for k, v in build_model(cfg.model).state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if found != expected:
        wrong = [k for k in expected if k in found and expected[k] != found[k]]  # in layer order
        detail = (f"{wrong[0]} is {found[wrong[0]]}, the x{cfg.model.scale} network it describes needs {expected[wrong[0]]}"
                  if wrong else f"tensors {sorted(found.keys() ^ expected.keys())[:3]} missing or extra")
        raise UserError(f"{path}: weights do not match the model its metadata describes ({detail})")
    bad = [k for k, v in state.items() if not torch.isfinite(v).all()]
    if bad:
        raise UserError(f"{path}: weights {bad[0]} contain NaN or infinite values (a diverged run?); not used")
    model = build_model(cfg.model)
    model.load_state_dict(state)
    return LoadedModel(model.folded().eval(), plain_config(cfg), degradation, str(path))


def _load_error(err: Exception, path: Path) -> str:
    """Why ``torch.load`` refused a file, in a few words."""
    text = (str(err).strip().splitlines() or [""])[0]
    try:
        with open(path, "rb") as f:
            zipped = f.read(4) == b"PK\x03\x04"  # torch.save writes a zip archive
    except OSError:
        zipped = False
    if not zipped:
        return "not a PyTorch checkpoint (not the zip archive torch.save writes)"
    if "Weights only load failed" in text:
        return "not a checkpoint espcn-lab wrote (a weights-only load refuses what it holds)"
    return f"damaged or truncated (a zip archive torch cannot read: {type(err).__name__}: {text[:100]})"


def _torch_load(path: Path) -> Any:
    with warnings.catch_warnings():  # torch's notes on what it refuses: the error says it in one line
        warnings.simplefilter("ignore")
        return torch.load(path, map_location="cpu", weights_only=True)


TRAINING_STATE = ("state_dict", "optimizer_states", "loops", "espcn_lab")


def read_training_checkpoint(path: str | Path) -> dict[str, Any]:
    """A Lightning checkpoint written by ``espcn-lab fit`` (weights, optimiser, loops), loaded weights-only;
    UserError saying what the file is instead (a model file, damaged, something else)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        raise UserError(f"{path} is a model file (weights only), not a training checkpoint")
    try:
        ckpt = _torch_load(path)
    except Exception as err:
        raise UserError(f"{path}: {_load_error(err, path)}") from None
    missing = [k for k in TRAINING_STATE if not isinstance(ckpt, dict) or k not in ckpt]
    if missing:
        raise UserError(f"{path}: not a training checkpoint of espcn-lab fit (it has no {', '.join(missing)})")
    return ckpt


def load_model(spec: str) -> LoadedModel:
    """``'x3'``, a ``.safetensors`` file or a Lightning ``.ckpt`` -> LoadedModel (eval mode, CPU)."""
    path = _resolve(spec)
    try:
        if path.suffix == ".safetensors":
            from safetensors import safe_open

            with safe_open(str(path), framework="pt") as f:
                payload = json.loads((f.metadata() or {})["espcn_lab"])
                state = {k: f.get_tensor(k) for k in f.keys()}
        else:
            try:
                ckpt = _torch_load(path)
            except Exception as err:
                raise UserError(f"{path}: not an espcn-lab model: {_load_error(err, path)}") from None
            missing = [k for k in ("espcn_lab", "state_dict") if not isinstance(ckpt, dict) or k not in ckpt]
            if missing:
                raise UserError(f"{path}: not an espcn-lab model (a checkpoint without {' or '.join(missing)})")
            payload = ckpt["espcn_lab"]
            state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    except UserError:
        raise
    except Exception as err:  # a corrupt file, the wrong layout: all mean "not a model"
        first = (str(err).splitlines() or [""])[0][:200]
        raise UserError(f"{path}: not an espcn-lab model ({type(err).__name__}: {first})") from None
    return _from_payload(payload, state, path)
