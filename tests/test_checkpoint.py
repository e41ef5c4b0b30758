import pickle

import pytest
import torch

from espcn_lab.checkpoint import load_model, save_safetensors
from espcn_lab.config import load_config, to_dict
from espcn_lab.errors import UserError
from espcn_lab.imaging.degrade import DegradationSpec
from espcn_lab.model import build_model


def test_safetensors_round_trip_keeps_weights_config_and_degradation(tmp_path):
    cfg = load_config(None, ["model.scale=2", "model.features=[8,4]", "model.activation=relu"])
    model = build_model(cfg.model)
    path = save_safetensors(model, cfg, DegradationSpec("gaussian", 1.2), tmp_path / "m.safetensors")
    loaded = load_model(str(path))
    assert loaded.config == cfg and loaded.degradation == DegradationSpec("gaussian", 1.2)
    x = torch.rand(1, 1, 6, 5)
    assert torch.equal(loaded.model(x), model(x))


def test_lightning_style_checkpoint_loads_weights_only(tmp_path):
    cfg = load_config(None, ["model.features=[4]", "model.kernels=[3,3]"])
    model = build_model(cfg.model)
    ckpt = {"state_dict": {f"model.{k}": v for k, v in model.state_dict().items()},
            "espcn_lab": {"config": to_dict(cfg), "degradation": {"kind": "bicubic", "sigma": None}}}
    torch.save(ckpt, tmp_path / "a.ckpt")
    assert load_model(str(tmp_path / "a.ckpt")).config.model.features == [4]


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_pickled_code_is_refused(tmp_path):
    path = tmp_path / "evil.ckpt"
    path.write_bytes(pickle.dumps({"x": Evil()}))
    with pytest.raises(UserError, match="not an espcn-lab model"):
        load_model(str(path))


def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_model(str(tmp_path / "nope.ckpt"))
    (tmp_path / "junk.safetensors").write_bytes(b"hello")
    with pytest.raises(UserError):
        load_model(str(tmp_path / "junk.safetensors"))
