"""Ensembles (paper Sec. 5 future work): averaged models and the geometric self-ensemble, through `eval`."""

import json

import numpy as np
import pytest
import torch

from espcn_lab.checkpoint import load_model
from espcn_lab.cli import main
from espcn_lab.config import load_config
from espcn_lab.evaluate.ensemble import ModelEnsemble, SelfEnsemble
from espcn_lab.model import build_model


def _net(seed: int, scale: int = 3):
    torch.manual_seed(seed)
    return build_model(load_config(None, [f"model.scale={scale}", "model.features=[8,4]"]).model).eval()


@torch.no_grad()
def test_self_ensemble_is_the_mean_of_the_eight_transformed_passes():
    net = _net(0)
    x = torch.rand(1, 1, 7, 9)  # not square: rotations change the shape
    expected = np.zeros((21, 27))
    for k in range(4):
        for flip in (False, True):
            arr = np.rot90(x[0, 0].numpy(), k)
            arr = arr[:, ::-1] if flip else arr
            y = net(torch.from_numpy(arr.copy())[None, None])[0, 0].numpy()
            y = y[:, ::-1] if flip else y
            expected += np.rot90(y, -k) / 8
    out = SelfEnsemble(net)(x)[0, 0].numpy()
    assert out.shape == (21, 27) and np.allclose(out, expected, atol=1e-6)
    assert not np.allclose(out, net(x)[0, 0].numpy(), atol=1e-4)  # a random net is not rotation-equivariant
    # ...but its self-ensemble is
    assert torch.allclose(SelfEnsemble(net)(torch.rot90(x, 1, (2, 3))), torch.rot90(SelfEnsemble(net)(x), 1, (2, 3)), atol=1e-6)


@torch.no_grad()
def test_model_ensemble_averages_outputs():
    a, b, x = _net(1), _net(2), torch.rand(2, 1, 6, 6)
    assert torch.allclose(ModelEnsemble([a, b])(x), (a(x) + b(x)) / 2, atol=1e-7)
    assert torch.equal(ModelEnsemble([a])(x), a(x))


def test_cli_eval_scores_ensembles_of_the_shipped_model(shared_data, tmp_path, capsys):
    def run(*extra):
        out = tmp_path / f"r{len(extra)}.json"
        with pytest.raises(SystemExit) as done:
            main(["eval", "x3", "--data", f"Set5={shared_data / 'Set5'}", "--device", "cpu", "--json", str(out), *extra])
        assert done.value.code in (0, None)
        return json.loads(out.read_text())

    single, selfens = run(), run("--self-ensemble")
    twice = run("--ensemble", "x3", "--ensemble", str(load_model("x3").source))
    psnr = lambda doc: doc["datasets"]["Set5"]["model"]["psnr_y"]  # noqa: E731
    assert selfens["self_ensemble"] and "self-ensemble x8" in selfens["model"]
    assert psnr(selfens) > psnr(single)  # the geometric self-ensemble gains on a trained model
    assert abs(psnr(twice) - psnr(single)) < 1e-3 and twice["model"].endswith("ensemble of 3")  # (a+a+a)/3 rounds a few pixels
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:
        main(["eval", "x3", "--data", f"Set5={shared_data / 'Set5'}", "--ensemble", "x2"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "x2, but the model is x3" in err and len(err.strip().splitlines()) == 1
