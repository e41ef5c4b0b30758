"""fit with model.reparam=ecb: the checkpoint keeps the branches (a run resumes), everything that loads it
sees the folded plain network (eval scores what validation scored, export writes the paper's network)."""

import torch
from _cli import fit_overrides, logged

from espcn_lab.checkpoint import load_model
from espcn_lab.config import load_config
from espcn_lab.imaging.degrade import DegradationSpec
from espcn_lab.model import ESPCN, RepConv2d, count_parameters


def test_fit_with_ecb_resumes_with_its_branches_and_every_consumer_sees_the_plain_network(inputs, monkeypatch,
                                                                                          tmp_path):
    from espcn_lab.deploy.export import export_model
    from espcn_lab.evaluate.run import evaluate
    from espcn_lab.train.fit import fit

    monkeypatch.setenv("WANDB_MODE", "disabled")
    root, shards = inputs
    args = fit_overrides(root, shards, "ecb", "model.reparam=ecb", latency=False)
    summary = fit(load_config("configs/smoke.yaml", args))
    run = root / "runs" / "ecb"
    assert summary["model/params"] == count_parameters(ESPCN(3, features=[8, 4]))  # what inference runs
    ckpt = torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)
    assert any(k.endswith("es_w1") for k in ckpt["state_dict"])  # the branches are kept for a resume
    loaded = load_model(str(run / "last.ckpt"))
    assert loaded.config.model.reparam == "none" and not any(isinstance(m, RepConv2d) for m in loaded.model.modules())
    # validation ran the branches; eval runs the folded network: the same score
    scored = evaluate(str(run / "last.ckpt"), {"Tiny": str(root / "val")}, device="cpu")
    assert abs(scored["datasets"]["Tiny"]["model"]["psnr_y"] - logged(run, "val/Tiny/psnr_y")[-1]) < 1e-3
    export_model(loaded, tmp_path / "m.onnx", "onnx")  # parity-checked against the loaded model
    assert (tmp_path / "m.onnx").stat().st_size > 0
    resumed = fit(load_config("configs/smoke.yaml", args + ["run.resume=last", "trainer.max_epochs=3"]))
    assert resumed["steps"] == summary["steps"] + 4


def test_init_from_a_plain_model_starts_an_ecb_run_at_the_same_function(tmp_path):
    from espcn_lab.train.fit import warm_start
    from espcn_lab.train.module import ESPCNModule

    cfg = load_config(None, ["model.reparam=ecb", "run.init_from=x3"])
    module = ESPCNModule(cfg, DegradationSpec())
    warm_start(module, cfg)
    shipped = load_model("x3").model
    x = torch.rand(1, 1, 24, 20)
    with torch.no_grad():
        assert torch.allclose(module.model(x), shipped(x), atol=1e-6)
