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


def _write(path, state, meta):
    import json

    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state.items()}, str(path),
              metadata={"espcn_lab": meta if isinstance(meta, str) else json.dumps(meta)})
    return str(path)


def _paper(scale=3, **over):
    cfg = load_config(None, [f"model.scale={scale}", *(f"{k}={v}" for k, v in over.items())])
    return build_model(cfg.model), {"config": to_dict(cfg), "degradation": {"kind": "bicubic", "sigma": None}}


@pytest.mark.parametrize("case,message", [
    ("wrong_scale", "last.weight is (4, 32, 3, 3), the x3 network it describes needs (9, 32, 3, 3)"),
    ("wrong_width", "body.0.weight is (16, 1, 5, 5)"),
    ("missing", "missing or extra"),
    ("list_meta", "holds no config mapping"),
    ("absurd", "do not match the model its metadata describes"),
    ("bad_config", "its stored config is not valid (model.kernels"),
    ("nan", "contain NaN or infinite values"),
    ("truncated", "not an espcn-lab model"),
])
def test_inconsistent_or_hostile_model_files_are_one_line(tmp_path, case, message, capsys):
    from espcn_lab.cli import main

    model3, meta3 = _paper(3)
    path = tmp_path / f"{case}.safetensors"
    if case == "wrong_scale":  # x2 weights labelled x3
        _write(path, _paper(2)[0].state_dict(), meta3)
    elif case == "wrong_width":
        _write(path, _paper(3, **{"model.features": "[16,32]"})[0].state_dict(), meta3)
    elif case == "missing":
        _write(path, {k: v for k, v in model3.state_dict().items() if k != "last.bias"}, meta3)
    elif case == "list_meta":
        _write(path, model3.state_dict(), "[1, 2, 3]")
    elif case == "absurd":  # metadata describing a 360 GB network over small tensors: never built
        huge = {**meta3, "config": {**meta3["config"], "model": {**meta3["config"]["model"], "features": [300000, 300000]}}}
        _write(path, model3.state_dict(), huge)
    elif case == "bad_config":
        bad = {**meta3, "config": {**meta3["config"], "model": {**meta3["config"]["model"], "kernels": [5, 3]}}}
        _write(path, model3.state_dict(), bad)
    elif case == "nan":
        state = model3.state_dict()
        state["body.0.weight"][0, 0, 0, 0] = float("nan")
        _write(path, state, meta3)
    else:
        data = open(_write(path, model3.state_dict(), meta3), "rb").read()
        path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_model(str(path))
    with pytest.raises(SystemExit) as exit_:
        main(["eval", str(path), "--data", f"A={tmp_path}"])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and err.startswith("espcn-lab: error:")


def test_a_failed_save_leaves_the_previous_file_untouched(tmp_path, monkeypatch):
    import safetensors.torch

    model, _ = _paper(2)
    cfg = load_config(None, ["model.scale=2"])
    path = save_safetensors(model, cfg, DegradationSpec(), tmp_path / "m.safetensors")
    before = path.read_bytes()

    def fail(state, filename, metadata=None):
        open(filename, "wb").write(b"half a file")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(safetensors.torch, "save_file", fail)
    with pytest.raises(UserError, match="No space left on device"):
        save_safetensors(model, cfg, DegradationSpec(), path)
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["m.safetensors"]
