"""fit(cfg) and `espcn-lab fit` end to end: run folder, checkpoints, resume, NaN, DDP, bad input."""

import json
import os
import signal
import subprocess
import time

import pytest
import torch
from _cli import fit_overrides, logged
from PIL import Image

from espcn_lab.checkpoint import load_model
from espcn_lab.cli import main
from espcn_lab.config import load_config
from espcn_lab.errors import UserError
from espcn_lab.imaging.read import iter_hr_images
from espcn_lab.train.fit import fit

ENV = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}


def test_fit_writes_the_run_folder_and_checkpoints_load_weights_only(inputs, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    root, shards = inputs
    summary = fit(load_config("configs/smoke.yaml", fit_overrides(root, shards, "a")))
    run = root / "runs" / "a"
    assert {"config.yaml", "best.ckpt", "last.ckpt", "metrics.csv", "summary.json", "samples.png",
            "filters.png"} <= {p.name for p in run.iterdir()}
    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk["status"] == "finished" and on_disk["epochs"] == 2 and on_disk["steps"] == 8
    for key in ("val/psnr_y", "val/ssim_y", "val/Tiny/psnr_y", "val/Tiny/ssim_y", "latency/ms_1080p",
                "model/params", "model/macs_1080p", "train_seconds", "best_ckpt"):
        assert key in on_disk, key
    assert on_disk["val/psnr_y"] == on_disk["val/Tiny/psnr_y"] and summary["model/params"] == on_disk["model/params"]
    assert on_disk["model/macs_1080p"] == 360 * 640 * (25 * 8 + 9 * 8 * 4 + 9 * 4 * 9)
    header = (run / "metrics.csv").read_text().splitlines()[0]
    assert all(k in header for k in ("train/loss", "val/psnr_y", "lr-Adam/layer1", "lr-Adam/layer3"))
    ckpt = torch.load(run / "best.ckpt", map_location="cpu", weights_only=True)
    assert ckpt["espcn_lab"]["degradation"] == {"kind": "bicubic", "sigma": None}
    assert load_model(str(run / "last.ckpt")).config.model.features == [8, 4]
    # resume: continues the step count and the schedule, keeps earlier metrics
    resumed = fit(load_config("configs/smoke.yaml", fit_overrides(root, shards, "a", "run.resume=last",
                                                               "trainer.max_epochs=3")))
    assert resumed["steps"] == 12 and resumed["epochs"] == 3 and (run / "metrics.1.csv").is_file()
    with pytest.raises(UserError, match="already holds a run"):
        fit(load_config("configs/smoke.yaml", fit_overrides(root, shards, "a")))


def test_last_ckpt_is_the_final_state_even_when_validation_got_worse(inputs, monkeypatch):
    """best.ckpt follows val/psnr_y; last.ckpt is the latest state whatever the score (it is what ships)."""
    import espcn_lab.train.callbacks as train_mod
    from espcn_lab.train.module import ESPCNModule

    monkeypatch.setenv("WANDB_MODE", "disabled")
    root, shards = inputs
    real = ESPCNModule.on_validation_epoch_end

    def falling_score(self):  # the real validation, then a monitored score that drops every epoch
        real(self)
        self.log("val/falling", 30.0 - self.current_epoch)

    monkeypatch.setattr(ESPCNModule, "on_validation_epoch_end", falling_score)
    monkeypatch.setattr(train_mod, "MONITOR", "val/falling")
    summary = fit(load_config("configs/smoke.yaml", fit_overrides(root, shards, "worse", "trainer.max_epochs=3")))
    run = root / "runs" / "worse"
    last = torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)
    best = torch.load(run / "best.ckpt", map_location="cpu", weights_only=True)
    assert summary["steps"] == 12 and last["global_step"] == 12
    assert best["global_step"] == 4  # epoch 0 scored highest


def test_nan_loss_stops_with_status(inputs, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    root, shards = inputs
    with pytest.raises(UserError, match="non-finite"):
        fit(load_config("configs/smoke.yaml", fit_overrides(root, shards, "nan", "optim.learning_rate=1e30",
                                                         "optim.name=sgd")))
    assert json.loads((root / "runs" / "nan" / "summary.json").read_text())["status"] == "stopped_nan"


def _cli(*args, **kw):
    return subprocess.run(["espcn-lab", "fit", *args], capture_output=True, text=True, env=ENV, **kw)


def test_bad_input_is_one_line_and_exit_2(inputs, tmp_path, capsys):
    root, shards = inputs
    (tmp_path / "empty").mkdir()
    for extra, message in [(["optim.lr=1"], "unknown config key optim.lr"),
                           (["data.batch_size=big"], "data.batch_size"),
                           (["data.train_shards=/nope/shards"], "no shards found"),
                           ([f"data.val_dirs.Tiny={tmp_path / 'empty'}"], "no images")]:
        with pytest.raises(SystemExit) as exited:
            main(["fit", "configs/smoke.yaml", *fit_overrides(root, shards, "bad"), *extra])
        err = capsys.readouterr().err
        assert exited.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err


def test_ddp_on_two_cpu_processes(inputs):
    root, shards = inputs
    proc = _cli("configs/smoke.yaml", *fit_overrides(root, shards, "ddp", "trainer.devices=2", "trainer.strategy=ddp",
                                                  "trainer.max_epochs=1"), timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == f"run: {root / 'runs' / 'ddp'}"
    summary = json.loads((root / "runs" / "ddp" / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps"] == 2  # 128 pairs / (32 x 2 ranks)


def test_kill_9_then_resume_continues_from_last_checkpoint(inputs):
    root, shards = inputs
    args = ["configs/smoke.yaml", *fit_overrides(root, shards, "kill", "trainer.max_epochs=1000", "log.latency=false")]
    proc = subprocess.Popen(["espcn-lab", "fit", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    last = root / "runs" / "kill" / "last.ckpt"
    deadline = time.time() + 120
    while time.time() < deadline and not (last.is_file() and torch.load(last, weights_only=True)["global_step"] >= 8):
        time.sleep(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    step = torch.load(last, weights_only=True)["global_step"]
    done = _cli(*args[:-1], "log.latency=false", "run.resume=last", f"trainer.max_epochs={step // 4 + 1}")
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads((root / "runs" / "kill" / "summary.json").read_text())
    assert summary["steps"] == step + 4 and summary["status"] == "finished"


def test_init_from_copies_weights_and_refuses_another_architecture(tmp_path):
    from espcn_lab.checkpoint import save_safetensors
    from espcn_lab.imaging.degrade import DegradationSpec
    from espcn_lab.model import build_model
    from espcn_lab.train.fit import warm_start
    from espcn_lab.train.module import ESPCNModule

    donor_cfg = load_config(None, ["model.features=[8,4]"])
    donor = build_model(donor_cfg.model)
    path = save_safetensors(donor, donor_cfg, DegradationSpec(), tmp_path / "donor.safetensors")
    cfg = load_config(None, ["model.features=[8,4]", f"run.init_from={path}"])
    module = ESPCNModule(cfg, DegradationSpec())
    warm_start(module, cfg)
    assert all(torch.equal(a, b) for a, b in zip(module.model.state_dict().values(), donor.state_dict().values()))
    other = load_config(None, ["model.features=[16,4]", f"run.init_from={path}"])
    with pytest.raises(UserError, match="different network"):
        warm_start(ESPCNModule(other, DegradationSpec()), other)


def test_validation_scores_what_eval_scores_on_the_images_prep_held_out(tmp_path, shared_data, monkeypatch):
    """One scoring path: val/<set>/psnr_y of the final epoch equals `eval` of last.ckpt on the same set, here the
    images `prep --val-images` held out of the training source (no evaluation set involved)."""
    from data_prep import PrepOptions, run_prep
    from espcn_lab.evaluate.run import evaluate

    monkeypatch.setenv("WANDB_MODE", "disabled")
    photos = tmp_path / "photos"
    photos.mkdir()
    for name, img in list(iter_hr_images(shared_data / "T91"))[:8]:
        Image.fromarray(img).save(photos / f"{name}.png")
    shards = tmp_path / "shards"
    run_prep(PrepOptions(out=shards, scale=3, image_dir=photos, val_images=2, workers=1, progress=False))
    fit(load_config("configs/smoke.yaml", [f"data.train_shards={shards}", "data.val_dirs={}",
                                           f"data.val_dirs.heldout={shards}", "model.features=[8,4]",
                                           "data.samples_per_epoch=128", "data.batch_size=32",
                                           f"run.dir={tmp_path / 'runs'}", "run.name=v", "log.latency=false"]))
    last_logged = logged(tmp_path / "runs" / "v", "val/heldout/psnr_y")[-1]
    scored = evaluate(str(tmp_path / "runs" / "v" / "last.ckpt"), {"heldout": str(shards)}, device="cpu")
    assert len(scored["datasets"]["heldout"]["images"]) == 2
    assert abs(scored["datasets"]["heldout"]["model"]["psnr_y"] - last_logged) < 1e-4


def test_a_shard_folder_without_held_out_images_is_refused_as_validation(inputs):
    root, shards = inputs
    with pytest.raises(UserError, match="no held-out images"):
        fit(load_config("configs/smoke.yaml", fit_overrides(root, shards, "nv", f"data.val_dirs.heldout={shards}")))


def test_ema_weights_are_what_validation_checkpoints_and_resume_use(inputs, monkeypatch):
    """optim.ema_decay: last.ckpt's weights are the moving average of every step's weights (golden, recomputed from the
    recorded steps), the raw weights travel beside them and a resume continues both; 0 (the default) adds nothing."""
    import lightning as L

    import espcn_lab.train.callbacks as callbacks_mod
    from espcn_lab.evaluate.run import evaluate
    from espcn_lab.train.signals import StopRequest

    monkeypatch.setenv("WANDB_MODE", "disabled")
    root, shards = inputs
    steps: list[dict[str, torch.Tensor]] = []
    starts: list[dict[str, torch.Tensor]] = []

    class Record(L.Callback):  # the weights training starts from, and those after every step
        def on_train_start(self, trainer, module):
            starts.append({k: v.detach().clone() for k, v in module.model.state_dict().items()})

        def on_train_batch_end(self, trainer, module, *args):
            steps.append({k: v.detach().clone() for k, v in module.model.state_dict().items()})

    real = callbacks_mod.run_callbacks
    monkeypatch.setattr(callbacks_mod, "run_callbacks", lambda *a, **kw: [*real(*a, **kw), Record()])
    decay = 0.75
    fit(load_config("configs/smoke.yaml", fit_overrides(root, shards, "ema", f"optim.ema_decay={decay}",
                                                         latency=False)))
    run = root / "runs" / "ema"
    ckpt = torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)
    assert len(steps) == 8 and int(ckpt["averaging_state"]["n_averaged"]) == 8
    for key, raw in ckpt["current_model_state"].items():
        name = key.removeprefix("model.")
        expected = steps[0][name].clone()  # the first update copies, then ema = d * ema + (1 - d) * w
        for later in steps[1:]:
            expected = decay * expected + (1 - decay) * later[name]
        assert torch.allclose(ckpt["state_dict"][key], expected, atol=1e-6), key
        assert torch.equal(raw, steps[-1][name]), key
    assert any(not torch.equal(ckpt["state_dict"][k], v) for k, v in ckpt["current_model_state"].items())
    # the model a user loads (export, eval, refit) is the average, and it is what validation scored
    loaded = load_model(str(run / "last.ckpt")).model.state_dict()
    assert all(torch.equal(loaded[k.removeprefix("model.")], v) for k, v in ckpt["state_dict"].items())
    scored = evaluate(str(run / "last.ckpt"), {"Tiny": str(root / "val")}, device="cpu")
    assert abs(scored["datasets"]["Tiny"]["model"]["psnr_y"] - logged(run, "val/Tiny/psnr_y")[-1]) < 1e-4
    # resume: training continues from the raw weights, the average from the saved one
    steps.clear()
    fit(load_config("configs/smoke.yaml", fit_overrides(root, shards, "ema", f"optim.ema_decay={decay}",
                                                         "run.resume=last", "trainer.max_epochs=3", latency=False)))
    again = torch.load(run / "last.ckpt", map_location="cpu", weights_only=True)
    assert len(steps) == 4 and int(again["averaging_state"]["n_averaged"]) == 12
    assert all(torch.equal(starts[-1][k.removeprefix("model.")], v) for k, v in ckpt["current_model_state"].items())
    for key in ckpt["state_dict"]:
        name = key.removeprefix("model.")
        expected = ckpt["state_dict"][key].clone()
        for later in steps:
            expected = decay * expected + (1 - decay) * later[name]
        assert torch.allclose(again["state_dict"][key], expected, atol=1e-6), key
    # turning it off on resume would go on from the average with the raw weights' optimiser state: refused, unchanged
    before = (run / "last.ckpt").read_bytes()
    with pytest.raises(UserError, match=r"holds a moving average of the weights \(optim.ema_decay=0.75\)"):
        fit(load_config("configs/smoke.yaml", fit_overrides(root, shards, "ema", "run.resume=last",
                                                             "trainer.max_epochs=4", latency=False)))
    assert (run / "last.ckpt").read_bytes() == before
    # off by default (0): no averaging callback
    default = load_config("configs/smoke.yaml", fit_overrides(root, shards, "plain"))
    assert default.optim.ema_decay == 0
    assert not any("WeightAveraging" in type(cb).__name__ for cb in real(default, run, StopRequest(), "bar"))
