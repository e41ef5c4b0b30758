"""`espcn-lab fit` when things go wrong: signals, refused resumes, broken or empty shards, a run folder that
refuses writes. Every failure is one line and an exit code; nothing already written is lost or rewritten."""

import errno
import hashlib
import json
import os
import signal
import subprocess
import threading
import time

import pytest
import torch
from _cli import fit_overrides

from espcn_lab.checkpoint import load_model, save_safetensors
from espcn_lab.cli import main
from espcn_lab.config import load_config
from espcn_lab.errors import Interrupted
from espcn_lab.train.fit import fit

ENV = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
STATUS = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated", signal.SIGHUP: "hangup"}


def _quiet_overrides(root, shards, name, *extra):
    return fit_overrides(root, shards, name, *extra, latency=False)


def _fit_cli(capsys, args, timeout=120):
    """`espcn-lab fit` in this process, in a thread with a deadline (the old code looped forever on empty
    shards): (exit code, stderr)."""
    box = {}

    def run():
        try:
            main(["fit", "configs/smoke.yaml", *args])
            box["code"] = 0
        except SystemExit as exit:
            box["code"] = exit.code
        except BaseException as err:  # noqa: BLE001 - reported below
            box["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"fit still running after {timeout} s"
    assert "error" not in box, repr(box.get("error"))
    return box["code"], capsys.readouterr().err


def _snapshot(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _one_line(err):
    return [line for line in err.strip().splitlines() if line.startswith("espcn-lab")]


# ---------------------------------------------------------------- signals
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_stops_fit_with_last_ckpt_a_summary_and_its_exit_code_then_resume_continues(inputs, signum,
                                                                                             monkeypatch):
    root, shards = inputs
    name = f"sig{signum}"
    args = _quiet_overrides(root, shards, name, "trainer.max_epochs=1000")
    # default dispositions in the child: under `nohup` (SIGHUP ignored, inherited) fit rightly keeps ignoring it
    proc = subprocess.Popen(["espcn-lab", "fit", "configs/smoke.yaml", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV,
                            preexec_fn=lambda: signal.signal(signum, signal.SIG_DFL))
    last, deadline = root / "runs" / name / "last.ckpt", time.monotonic() + 120
    while time.monotonic() < deadline and not (last.is_file() and torch.load(last, weights_only=True)["global_step"] >= 8):
        time.sleep(0.1)
    sent = time.monotonic()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signum, err[-2000:]
    assert time.monotonic() - sent < 20
    summary = json.loads((root / "runs" / name / "summary.json").read_text())
    step = torch.load(last, weights_only=True)["global_step"]
    assert summary["status"] == STATUS[signum] and summary["steps"] == step >= 8
    assert err.strip().splitlines()[-1] == (f"espcn-lab: {STATUS[signum]} by {signal.Signals(signum).name}; {last} "
                                            f"holds step {step}: continue with run.resume=last")
    assert load_model(str(last)).config.model.features == [8, 4]
    # resume: the interrupted epoch is finished, not restarted, so the count is that of an uninterrupted run
    monkeypatch.setenv("WANDB_MODE", "disabled")
    epochs = step // 4 + 2
    resumed = fit(load_config("configs/smoke.yaml", _quiet_overrides(root, shards, name, "run.resume=last",
                                                               f"trainer.max_epochs={epochs}")))
    assert resumed["status"] == "finished" and resumed["steps"] == 4 * epochs and resumed["epochs"] == epochs


def test_a_kill_9_before_the_first_validation_resumes_from_the_timed_last_ckpt(inputs, monkeypatch):
    """SIGKILL cannot be caught: what a killed run has is the last.ckpt written every run.checkpoint_every_min."""
    root, shards = inputs
    name = "killed"
    args = _quiet_overrides(root, shards, name, "trainer.max_epochs=1000", "data.val_every_n_epochs=1000",
                            "run.checkpoint_every_min=0.002")  # 0.12 s
    proc = subprocess.Popen(["espcn-lab", "fit", "configs/smoke.yaml", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=ENV)
    last, deadline = root / "runs" / name / "last.ckpt", time.monotonic() + 120
    while time.monotonic() < deadline and not (last.is_file() and torch.load(last, weights_only=True)["global_step"] >= 10):
        assert proc.poll() is None, proc.stderr.read()[-2000:]
        time.sleep(0.1)
    proc.kill()
    proc.communicate(timeout=60)
    step = torch.load(last, weights_only=True)["global_step"]
    assert step >= 10 and not (root / "runs" / name / "summary.json").exists()  # no validation, no clean stop
    monkeypatch.setenv("WANDB_MODE", "disabled")
    epochs = step // 4 + 2
    resumed = fit(load_config("configs/smoke.yaml", _quiet_overrides(root, shards, name, "run.resume=last",
                                                               "run.checkpoint_every_min=0.002", f"trainer.max_epochs={epochs}")))
    # exactly an uninterrupted run's steps: the killed batch is not trained twice, nor the epoch's rest skipped
    assert resumed["status"] == "finished" and resumed["steps"] == 4 * epochs and resumed["epochs"] == epochs


def test_ctrl_c_during_the_first_validation_stops_after_it(inputs, monkeypatch):
    """A stop asked for while validating waits for the validation to end (its scores are logged), then saves."""
    from espcn_lab.train.module import ESPCNModule

    monkeypatch.setenv("WANDB_MODE", "disabled")
    root, shards = inputs
    real = ESPCNModule.validation_step

    def validation_step(self, batch, batch_idx):
        if self.current_epoch == 0 and batch_idx == 0:
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, delivered to this (main) thread
        return real(self, batch, batch_idx)

    monkeypatch.setattr(ESPCNModule, "validation_step", validation_step)
    # Ctrl-C as in a terminal: a test run started as a background job inherits SIGINT ignored, and fit rightly
    # keeps ignoring it then (as it does SIGHUP under nohup)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with pytest.raises(Interrupted, match="interrupted by SIGINT") as stopped:
            fit(load_config("configs/smoke.yaml", _quiet_overrides(root, shards, "val-int", "trainer.max_epochs=50")))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # put back after the run
    finally:
        signal.signal(signal.SIGINT, previous)
    assert stopped.value.signum == signal.SIGINT
    run = root / "runs" / "val-int"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "interrupted" and summary["steps"] == 5  # epoch 0 (4 steps) and one more step
    assert "val/Tiny/psnr_y" in summary and torch.load(run / "last.ckpt", weights_only=True)["global_step"] == 5


# ---------------------------------------------------------------- refused resumes
@pytest.fixture(scope="module")
def finished_run(inputs):
    root, shards = inputs
    os.environ["WANDB_MODE"] = "disabled"
    fit(load_config("configs/smoke.yaml", _quiet_overrides(root, shards, "done", "trainer.max_epochs=1")))
    return root / "runs" / "done"


def _not_models(folder):
    """Files that are not training checkpoints: text, a random pickle, a model file."""
    (folder / "notes.ckpt").write_text("hello\n")
    torch.save({"weights": torch.zeros(3)}, folder / "random.ckpt")
    import pickle

    (folder / "pickled.ckpt").write_bytes(pickle.dumps({"a": 1}))
    cfg = load_config(None, ["model.features=[8,4]"])
    from espcn_lab.imaging.degrade import DegradationSpec
    from espcn_lab.model import build_model

    save_safetensors(build_model(cfg.model), cfg, DegradationSpec(), folder / "model.safetensors")
    return {"notes.ckpt": "not a PyTorch checkpoint", "random.ckpt": "not a training checkpoint",
            "pickled.ckpt": "not a PyTorch checkpoint", "model.safetensors": "is a model file"}


def test_refused_resumes_are_one_line_and_leave_the_run_folder_byte_identical(inputs, finished_run, tmp_path, capsys):
    root, shards = inputs
    before = _snapshot(finished_run)
    refusals = [(["model.features=[16,4]", "run.resume=last"], "model.features is [8, 4] in the checkpoint, [16, 4] now"),
                (["optim.name=sgd", "run.resume=last"], "optim.name is 'adam' in the checkpoint, 'sgd' now"),
                (["model.activation=relu", "run.resume=last"], "model.activation is 'tanh' in the checkpoint"),
                ([f"run.resume={finished_run / 'nope.ckpt'}"], "checkpoint not found"),
                ([], "already holds a run")]
    refusals += [([f"run.resume={tmp_path / name}"], message) for name, message in _not_models(tmp_path).items()]
    for extra, message in refusals:
        code, err = _fit_cli(capsys, _quiet_overrides(root, shards, "done", *extra))  # later overrides win
        assert code == 2 and len(_one_line(err)) == 1 and message in err, (extra, err)
        assert _snapshot(finished_run) == before, extra
    nameless = [a for a in _quiet_overrides(root, shards, "-") if not a.startswith("run.name")]
    code, err = _fit_cli(capsys, [*nameless, f"run.resume={tmp_path / 'notes.ckpt'}"])
    assert code == 2 and not list(tmp_path.glob("*.yaml")), err  # no run.name: nothing beside the file either


def test_a_truncated_last_ckpt_is_refused_and_left_alone(inputs, finished_run, tmp_path, capsys):
    import shutil

    root, shards = inputs
    copy = root / "runs" / "cut"
    shutil.copytree(finished_run, copy)
    data = (copy / "last.ckpt").read_bytes()
    (copy / "last.ckpt").write_bytes(data[: len(data) // 2])
    before = _snapshot(copy)
    code, err = _fit_cli(capsys, _quiet_overrides(root, shards, "cut", "run.resume=last"))
    assert code == 2 and len(_one_line(err)) == 1 and "damaged or truncated" in err and "best.ckpt" in err, err
    assert _snapshot(copy) == before
    # the same files as run.init_from: one line, and no run folder made (a model file is what init_from takes)
    _not_models(tmp_path)
    for source in [copy / "last.ckpt", *(tmp_path / n for n in ("notes.ckpt", "random.ckpt", "pickled.ckpt"))]:
        code, err = _fit_cli(capsys, _quiet_overrides(root, shards, "fresh", f"run.init_from={source}"))
        assert code == 2 and len(_one_line(err)) == 1 and f"run.init_from: {source}: not an espcn-lab model" in err, err
        assert "Error:" not in err or source.name == "last.ckpt", err  # says what the file is, not a Python error
        assert not (root / "runs" / "fresh").exists()


# ---------------------------------------------------------------- empty or broken shards, unwritable run folder
def test_shards_with_no_pair_are_refused_by_prep_and_fit_in_one_line(inputs, shared_data, tmp_path, capsys):
    """Prep of images smaller than one patch used to say "0 pairs" and exit 0; fit then spun at 100% CPU."""
    root, _ = inputs
    shards = tmp_path / "none"
    with pytest.raises(SystemExit) as exited:
        main(["prep", "--image-dir", str(shared_data / "Set5"), "--out", str(shards), "--lq-patch", "1000",
              "--workers", "1", "--no-progress"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "prep cut 0 training pairs from 5 images (skipped: 5 too_small" in err, err
    started = time.monotonic()
    code, err = _fit_cli(capsys, _quiet_overrides(root, shards, "none"), timeout=60)
    assert code == 2 and len(_one_line(err)) == 1 and "hold 0 training pairs" in err and time.monotonic() - started < 30
    (shards / "manifest.json").unlink()  # shards made elsewhere, no manifest: the empty tar itself is refused
    code, err = _fit_cli(capsys, _quiet_overrides(root, shards, "none"), timeout=60)
    assert code == 2 and len(_one_line(err)) == 1 and "holds no samples" in err, err
    assert not (root / "runs" / "none").exists()


def test_broken_shards_one_line_when_none_is_readable_a_warning_each_otherwise(inputs, tmp_path, capsys, recwarn):
    import shutil

    root, shards = inputs
    broken = tmp_path / "broken"
    broken.mkdir()
    good = sorted(shards.glob("train-*.tar"))
    (broken / "train-000000.tar").write_bytes(os.urandom(30000))  # garbage
    code, err = _fit_cli(capsys, _quiet_overrides(root, broken, "garbage"))
    assert code == 2 and "the only shard cannot be read" in err and "not a tar file" in _one_line(err)[0], err
    assert not (root / "runs" / "garbage").exists()
    data = good[0].read_bytes()
    (broken / "train-000000.tar").write_bytes(data[: len(data) // 3])  # truncated: found while reading
    code, err = _fit_cli(capsys, _quiet_overrides(root, broken, "cutshard"))
    assert code == 2 and len(_one_line(err)) == 1 and "no training pair could be read" in err and "truncated" in err
    assert json.loads((root / "runs" / "cutshard" / "summary.json").read_text())["status"] == "failed"
    # some broken among good ones: a warning per broken shard (once, over 3 epochs), and training goes on
    for i, path in enumerate(good):
        shutil.copy(path, broken / f"train-00000{i + 1}.tar")
    (broken / "train-000003.tar").write_bytes(b"")
    recwarn.clear()
    code, err = _fit_cli(capsys, _quiet_overrides(root, broken, "mixed", "trainer.max_epochs=3"))
    assert code == 0, err
    skipped = [str(w.message) for w in recwarn if "skipping" in str(w.message)]
    assert sorted(s.split(":")[0] for s in skipped) == [f"skipping shard {broken / 'train-000003.tar'}",
                                                         f"skipping unreadable shard {broken / 'train-000000.tar'}"]


def test_a_run_folder_that_refuses_writes_is_one_line_and_keeps_the_last_whole_checkpoint(inputs, tmp_path, capsys,
                                                                                         monkeypatch):
    import espcn_lab.train.files as files

    root, shards = inputs
    (tmp_path / "file").write_text("not a folder")
    code, err = _fit_cli(capsys, [*_quiet_overrides(root, shards, "x"), f"run.dir={tmp_path / 'file' / 'runs'}"])
    assert code == 2 and "run.dir: cannot write the run folder" in err and len(_one_line(err)) == 1, err
    real, writes = files.write_bytes_atomic, []

    def disk_full_after_the_first_checkpoint(path, data):
        writes.append(str(path))
        if str(path).endswith(".ckpt") and sum(w.endswith("last.ckpt") for w in writes) > 1:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(path, data)

    monkeypatch.setattr(files, "write_bytes_atomic", disk_full_after_the_first_checkpoint)
    code, err = _fit_cli(capsys, _quiet_overrides(root, shards, "full", "trainer.max_epochs=5"))
    assert code == 1 and len(_one_line(err)) == 1 and "No space left on device" in err, err  # the machine, not the input
    last = root / "runs" / "full" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 4  # epoch 0's, whole
    assert not list(last.parent.glob(".*partial*"))  # no temporary file left behind


def test_validation_images_are_read_before_the_run_folder_is_written(inputs, tmp_path, capsys):
    root, shards = inputs
    (tmp_path / "val").mkdir()
    (tmp_path / "val" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code, err = _fit_cli(capsys, [*_quiet_overrides(root, shards, "badval"), f"data.val_dirs.Tiny={tmp_path / 'val'}"])
    assert code == 2 and "data.val_dirs.Tiny" in err and len(_one_line(err)) == 1, err
    assert not (root / "runs" / "badval").exists()


def test_a_step_budget_that_ends_before_the_first_validation_finishes(inputs, monkeypatch):
    """trainer.max_steps inside the first epoch used to end in early stopping's "val/psnr_y not available"."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    root, shards = inputs
    summary = fit(load_config("configs/smoke.yaml", _quiet_overrides(root, shards, "budget", "trainer.max_steps=2")))
    assert summary["status"] == "finished" and summary["steps"] == 2
    assert torch.load(root / "runs" / "budget" / "last.ckpt", weights_only=True)["global_step"] == 2
