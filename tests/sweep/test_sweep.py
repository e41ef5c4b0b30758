"""Sweeps: W&B parameter syntax, --check on every sweep file, local engine with a fake fit, real smoke sweep."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from _cli import run_cli

from espcn_lab.config import ConfigError, load_config
from espcn_lab.paths import REPO_ROOT
from espcn_lab.sweep.report import pareto_front
from espcn_lab.sweep.space import parse_param, parse_parameters
from espcn_lab.sweep.spec import expand_command, trial_id

ROOT = REPO_ROOT
SWEEP_FILES = sorted((ROOT / "sweeps").glob("*.yaml"))

# A stand-in for `espcn-lab fit CONFIG key=value ...`: applies the overrides like espcn-lab does, then
# writes summary.json as the fit contract says. Fails when optim.learning_rate > 0.05.
FAKE_FIT = '''
import json, os, signal, sys, time
from pathlib import Path
import yaml
from espcn_lab.config import load_raw
assert sys.argv[1] == "fit"
cfg = load_raw(sys.argv[2], sys.argv[3:])
run = Path(cfg["run"]["dir"]) / cfg["run"]["name"]
run.mkdir(parents=True, exist_ok=True)

def stop(signum, frame):  # as fit does: state saved, summary written, exit 128 + signal
    status = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated", signal.SIGHUP: "hangup"}[signum]
    (run / "summary.json").write_text(json.dumps({"status": status, "run_dir": str(run)}))
    sys.exit(128 + signum)

signal.signal(signal.SIGINT, stop)
signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGHUP, stop)
if os.environ.get("FAKE_FIT_CKPT"):
    (run / "last.ckpt").write_text("state")
with open(os.environ["FAKE_FIT_CALLS"], "a") as f:
    f.write(cfg["run"]["name"] + "\\n")
if os.environ.get("FAKE_FIT_PIDS"):
    with open(os.environ["FAKE_FIT_PIDS"], "a") as f:
        f.write(f"{os.getpid()}\\n")
start = time.time()
time.sleep(float(os.environ.get("FAKE_FIT_SLEEP", "0")))
lr = cfg.get("optim", {}).get("learning_rate", 0.01)
if lr > 0.05:
    sys.exit("boom: learning rate too high")
width = sum(cfg["model"]["features"])
psnr = 30 + width / 100 + (0.1 if cfg["model"].get("activation", "tanh") == "tanh" else 0)
summary = {"status": "finished", "run_dir": str(run), "epochs": 1, "steps": 3, "val/psnr_y": psnr,
           "val/ssim_y": 0.9, "val/Set5/psnr_y": psnr + 1, "val/Set5/ssim_y": 0.91,
           "latency/ms_1080p": width / 10, "model/params": width * 100, "model/macs_1080p": width * 1000,
           "train_seconds": 0.1, "best_ckpt": "", "gpu": os.environ.get("CUDA_VISIBLE_DEVICES"),
           "args": sys.argv[3:], "start": start, "end": time.time(), "lr": lr,
           "shards": cfg["data"]["train_shards"], "wandb_mode": cfg.get("log", {}).get("wandb_mode")}
(run / "summary.json").write_text(json.dumps(summary))
'''


@pytest.fixture
def fake(tmp_path, monkeypatch):
    """(write_sweep(parameters, method, extra), calls()) for sweeps whose program is the fake fit."""
    (tmp_path / "fake_fit.py").write_text(FAKE_FIT)
    config = tmp_path / "base.yaml"
    config.write_text("model: {scale: 3, features: [64, 32], kernels: [5, 3, 3]}\n"
                      "data: {train_shards: 'shards/t91-x${model.scale}'}\n")
    calls = tmp_path / "calls.txt"
    monkeypatch.setenv("FAKE_FIT_CALLS", str(calls))
    monkeypatch.setenv("WANDB_MODE", "disabled")

    def write_sweep(parameters: dict, method: str = "grid", **extra) -> Path:
        sweep = {"method": method, "metric": {"name": "val/psnr_y", "goal": "maximize"}, "parameters": parameters,
                 "program": str(tmp_path / "fake_fit.py"),
                 "command": ["${interpreter}", "${program}", "fit", str(config), "${args_no_hyphens}"], **extra}
        path = tmp_path / f"sweep_{method}.yaml"
        path.write_text(yaml.safe_dump(sweep))
        return path

    def read_calls() -> list[str]:
        return calls.read_text().split() if calls.exists() else []

    return write_sweep, read_calls


def read_rows(out: Path) -> list[dict]:
    with (out / "results.csv").open() as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------- W&B parameter syntax
def test_grid_values_follow_wandb():
    assert parse_param("a", {"min": 2, "max": 4}).grid_values() == [2, 3, 4]  # ints -> int_uniform
    assert parse_param("a", {"min": 2, "max": 4.0}).kind == "uniform"
    # W&B's grid walks q_uniform with numpy.arange: max excluded; an int q gives ints
    assert parse_param("a", {"distribution": "q_uniform", "min": 8, "max": 32, "q": 8}).grid_values() == [8, 16, 24]
    assert parse_param("a", {"value": [64, 32]}).grid_values() == [[64, 32]]
    nested = parse_param("model", {"parameters": {"features": {"values": [[8], [16]]}, "kernels": {"value": [5, 3]}}})
    assert nested.grid_values() == [{"features": [8], "kernels": [5, 3]}, {"features": [16], "kernels": [5, 3]}]
    with pytest.raises(ConfigError, match="has no grid"):
        parse_param("a", {"distribution": "log_uniform_values", "min": 1e-3, "max": 1e-1}).grid_values()


def test_suggestions_and_check_values():
    import optuna

    log_space = parse_param("lr", {"distribution": "log_uniform", "min": math.log(1e-3), "max": math.log(1e-1)})
    assert log_space.check_values() == pytest.approx([1e-3, 1e-1])  # W&B: bounds in log space
    trial = optuna.trial.FixedTrial({"lr": 0.01, "act": 1, "q": 0.5, "w": 0.9})
    assert log_space.suggest(trial) == pytest.approx(0.01)
    assert parse_param("act", {"values": ["tanh", {"x": 1}]}).suggest(trial) == {"x": 1}
    normal = parse_param("q", {"distribution": "q_normal", "mu": 10, "sigma": 3, "q": 2})
    assert normal.suggest(trial) == 10 and isinstance(normal.suggest(trial), int)
    weighted = parse_param("w", {"values": ["a", "b"], "probabilities": [0.8, 0.2]})
    assert weighted.suggest(trial) == "b" and weighted.from_quantile(0.5) == "a"


@pytest.mark.parametrize("spec, message", [
    ({"distribution": "gaussian"}, "unknown distribution"),
    ({"values": [1], "max": 3}, "unexpected"),
    ({"min": "1e-4", "max": 1.0}, "write 1.0e-4"),
    ({"min": 5, "max": 1}, "above max"),
    ({"distribution": "log_uniform_values", "min": 0, "max": 1}, "min > 0"),
])
def test_bad_parameter_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_param("p", spec)


def test_command_expansion_matches_wandb_agent():
    from wandb.sdk.launch.sweeps.utils import create_sweep_command_args

    args = [("model", {"features": [64, 32], "kernels": [5, 3, 3]}), ("optim.learning_rate", 1e-05), ("data.augment", False)]
    theirs = create_sweep_command_args({"args": {k: {"value": v} for k, v in args}})
    for macro in ("args", "args_no_hyphens", "args_no_equals", "args_no_boolean_flags", "args_json"):
        assert expand_command([f"${{{macro}}}"], None, args, None) == theirs[macro], macro
    argv = expand_command(["${env}", "${interpreter}", "${program}", "x${envvar:HOME}"], "train.py", [], None)
    assert argv == ["/usr/bin/env", sys.executable, "train.py", "x" + os.environ["HOME"]]


def test_wandb_dict_value_merges_into_section(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("model: {scale: 4, activation: relu}\ndata: {train_shards: 's/x${model.scale}', val_dirs: {A: a}}\n")
    cfg = load_config(config, ["model={'features': [32], 'kernels': [5, 3]}", "data.val_dirs={B: b}"])
    assert (cfg.model.scale, cfg.model.activation, cfg.model.features) == (4, "relu", [32])
    assert cfg.data.val_dirs == {"B": "b"} and cfg.data.train_shards == "s/x4"


# ---------------------------------------------------------------- --check
@pytest.mark.parametrize("sweep_file", SWEEP_FILES, ids=lambda p: p.name)
def test_repo_sweep_files_pass_check(sweep_file, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)  # the commands name configs/... relative to the repository, as W&B runs them
    code, out, err = run_cli(["sweep", str(sweep_file), "--check"], capsys)
    assert code == 0, err
    assert out.startswith("ok: ")


def test_repo_sweeps_cover_the_issue():
    def params(name):
        return parse_parameters(yaml.safe_load((ROOT / "sweeps" / name).read_text())["parameters"])

    layers = params("layers.yaml")[0].grid_values()
    assert len({len(v["features"]) for v in layers}) >= 3 and len({v["features"][0] for v in layers}) >= 3
    assert [p.grid_values() for p in params("scales.yaml")] == [[2, 3, 4]]


@pytest.mark.parametrize("parameters, command_tail, message", [
    ({"model.activaton": {"values": ["relu"]}}, None, "did you mean model.activation"),
    ({"model.activation": {"values": ["tanh", "swish"]}}, None, "model.activation: must be one of"),
    ({"model.scale": {"min": 2.0, "max": 4.0}}, None, "a uniform parameter has no grid"),
    ({"model.scale": {"min": 2.0, "max": 4.0}, "run.seed": {"value": 1}}, "random", "model.scale: expected int"),
    ({"model.features": {"values": [[64, 32], [64]]}}, None, "needs len"),
    ({"run.name": {"value": "x"}}, None, "set by the sweep itself"),
    ({"model.scale": {"values": [2]}}, ["fit", "CONFIG"], "args_no_hyphens"),
    ({"model.scale": {"values": [2]}}, ["fit", "missing.yaml", "${args_no_hyphens}"], "not found"),
    ({"model.scale": {"values": [2]}}, ["fit", "CONFIG", "${args_typo}"], "unknown macro"),
])
def test_check_names_the_problem(fake, capsys, parameters, command_tail, message):
    write_sweep, _ = fake
    path = write_sweep(parameters, command_tail if command_tail == "random" else "grid")
    if isinstance(command_tail, list):
        sweep = yaml.safe_load(path.read_text())
        config = sweep["command"][3]
        sweep["command"] = sweep["command"][:2] + [config if c == "CONFIG" else c for c in command_tail]
        path.write_text(yaml.safe_dump(sweep))
    code, out, err = run_cli(["sweep", str(path), "--check"], capsys)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err


# ---------------------------------------------------------------- local engine (fake fit)
def test_grid_sweep_records_failures_and_reruns_skip_finished(fake, tmp_path, capsys):
    write_sweep, calls = fake
    path = write_sweep({"model.activation": {"values": ["tanh", "relu"]},
                        "optim.learning_rate": {"values": [0.01, 0.1]}})
    out = tmp_path / "out"
    code, stdout, err = run_cli(["sweep", str(path), "--out", str(out), "trainer.max_epochs=2"], capsys)
    assert code == 1 and "1 trial(s) failed" not in err and "2 trial(s) failed" in err
    rows = read_rows(out)
    assert [(r["model.activation"], r["optim.learning_rate"], r["status"]) for r in rows] == [
        ("tanh", "0.01", "finished"), ("tanh", "0.1", "failed"), ("relu", "0.01", "finished"), ("relu", "0.1", "failed")]
    assert "boom: learning rate too high" in rows[1]["error"] and float(rows[0]["val/psnr_y"]) == pytest.approx(31.06)
    assert float(rows[0]["val/Set5/psnr_y"]) == pytest.approx(32.06) and float(rows[0]["latency/ms_1080p"]) > 0
    assert (out / "pareto.png").stat().st_size > 1000
    assert "best: " in stdout and "val/psnr_y=31.0600" in stdout
    summary = json.loads((out / "trials" / rows[0]["trial"] / "summary.json").read_text())
    assert summary["args"] == ["log.wandb_mode=offline", "model.activation=tanh", "optim.learning_rate=0.01",
                               "trainer.max_epochs=2", f"run.dir={out / 'trials'}", f"run.name={rows[0]['trial']}"]
    assert summary["shards"] == "shards/t91-x3"
    assert len(calls()) == 4
    code, _, _ = run_cli(["sweep", str(path), "--out", str(out), "trainer.max_epochs=2"], capsys)
    assert code == 1 and len(calls()) == 6  # only the two failed trials ran again
    assert calls()[4:] == [rows[1]["trial"], rows[3]["trial"]]
    code, _, err = run_cli(["sweep", str(path), "--out", str(out), "trainer.max_epochs=3"], capsys)
    assert code == 2 and "different sweep or other overrides" in err


def test_random_and_bayes_are_seeded_and_resume(fake, tmp_path, capsys):
    write_sweep, calls = fake
    params = {"model": {"values": [{"features": [16], "kernels": [5, 3]}, {"features": [64, 32], "kernels": [5, 3, 3]}]},
              "optim.learning_rate": {"distribution": "log_uniform_values", "min": 0.001, "max": 0.04}}
    for method in ("random", "bayes"):
        path = write_sweep(params, method)
        code, _, err = run_cli(["sweep", str(path), "--out", str(tmp_path / method), "--count", "3"], capsys)
        assert code == 0, err
        rows = read_rows(tmp_path / method)
        assert len(rows) == 3 and {r["status"] for r in rows} == {"finished"}
        assert all(0.001 <= float(r["optim.learning_rate"]) <= 0.04 for r in rows)
        assert {r["model.features"] for r in rows} <= {"[16]", "[64, 32]"}
    code, _, _ = run_cli(["sweep", str(write_sweep(params, "random")), "--out", str(tmp_path / "again"), "-n", "3"], capsys)
    assert [r["trial"] for r in read_rows(tmp_path / "again")] == [r["trial"] for r in read_rows(tmp_path / "random")]
    before = len(calls())
    code, stdout, _ = run_cli(["sweep", str(write_sweep(params, "bayes")), "--out", str(tmp_path / "bayes"), "-n", "4"], capsys)
    assert code == 0 and len(calls()) == before + 1 and len(read_rows(tmp_path / "bayes")) == 4
    assert "4/4 finished" in stdout


def test_trials_run_in_parallel_one_per_gpu(fake, tmp_path, capsys, monkeypatch):
    write_sweep, _ = fake
    monkeypatch.setenv("FAKE_FIT_SLEEP", "1.5")
    path = write_sweep({"run.seed": {"values": [0, 1]}})
    code, _, err = run_cli(["sweep", str(path), "--out", str(tmp_path / "out"), "--gpus", "0,1"], capsys)
    assert code == 0, err
    summaries = [json.loads((tmp_path / "out" / "trials" / r["trial"] / "summary.json").read_text())
                 for r in read_rows(tmp_path / "out")]
    assert sorted(s["gpu"] for s in summaries) == ["0", "1"]
    first, second = sorted(summaries, key=lambda s: s["start"])
    assert second["start"] < first["end"]  # they overlapped


@pytest.mark.parametrize("signum", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow),
                                    pytest.param(signal.SIGHUP, marks=pytest.mark.slow)])
def test_a_stopped_sweep_stops_its_trial_records_it_and_resumes(fake, tmp_path, signum, monkeypatch):
    """SIGTERM/SIGINT/SIGHUP (its terminal closed) to the sweep reach its running trial (which saves and exits), the
    sweep records the trial as interrupted and exits 128 + signal, and the same command again resumes that trial
    from its last.ckpt."""
    write_sweep, calls = fake
    path, out, pids = write_sweep({"run.seed": {"values": [0, 1]}}), tmp_path / "out", tmp_path / "pids"
    monkeypatch.setenv("FAKE_FIT_CKPT", "1")
    monkeypatch.setenv("FAKE_FIT_PIDS", str(pids))
    cmd = [sys.executable, "-m", "espcn_lab.cli", "sweep", str(path), "--out", str(out)]
    sweep = subprocess.Popen(cmd, env={**os.environ, "FAKE_FIT_SLEEP": "120"}, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (pids.is_file() and pids.read_text().strip()):
        time.sleep(0.05)
    trial_pid = int(pids.read_text().split()[0])
    started = time.monotonic()
    sweep.send_signal(signum)
    _, err = sweep.communicate(timeout=60)
    assert sweep.returncode == 128 + signum and time.monotonic() - started < 10, err
    assert "run the same command to resume" in err.strip().splitlines()[-1]
    with pytest.raises(ProcessLookupError):  # the trial is gone (and reaped), not left training
        os.kill(trial_pid, 0)
    rows = read_rows(out)
    assert [r["status"] for r in rows] == ["interrupted"] and f"trial exit {128 + signum}" in rows[0]["error"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = read_rows(out)
    assert [r["status"] for r in rows] == ["finished", "finished"] and len(calls()) == 3
    resumed = json.loads((out / "trials" / rows[0]["trial"] / "summary.json").read_text())
    assert resumed["args"][-1] == "run.resume=last"


def test_pareto_front():
    points = [(1.0, 30.0), (2.0, 31.0), (2.5, 30.5), (3.0, 31.0), (0.5, 29.0)]
    assert pareto_front(points) == [4, 0, 1]


def test_trial_id_is_a_hash_of_values():
    assert trial_id({"a": 1, "b": [2]}) == trial_id({"b": [2], "a": 1}) != trial_id({"a": 2, "b": [2]})


# ---------------------------------------------------------------- end to end with the real fit
def test_smoke_sweep_end_to_end(tmp_path, shared_data):
    """Two real `espcn-lab fit` trials on the smoke config, shards built by `espcn-lab prep`."""
    pytest.importorskip("espcn_lab.train")
    smoke = ROOT / "configs" / "smoke.yaml"
    if not smoke.is_file():
        pytest.skip("configs/smoke.yaml not written yet")
    scale = load_config(smoke).model.scale
    env = dict(os.environ, WANDB_MODE="disabled")
    prep = [sys.executable, "-m", "espcn_lab.cli", "prep", "--image-dir", str(shared_data / "Set5"), "--out",
            str(tmp_path / "shards"), "--scale", str(scale), "--num-images", "3", "--workers", "1", "--no-progress"]
    subprocess.run(prep, cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    sweep = {"method": "grid", "metric": {"name": "val/psnr_y", "goal": "maximize"},
             "parameters": {"model.activation": {"values": ["tanh", "relu"]}},
             "command": ["espcn-lab", "fit", str(smoke), "${args_no_hyphens}"]}
    path = tmp_path / "smoke_sweep.yaml"
    path.write_text(yaml.safe_dump(sweep))
    cmd = [sys.executable, "-m", "espcn_lab.cli", "sweep", str(path), "--out", str(tmp_path / "out"),
           f"data.train_shards={tmp_path / 'shards'}", "trainer.max_epochs=1", "data.samples_per_epoch=512"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    rows = read_rows(tmp_path / "out")
    assert [r["status"] for r in rows] == ["finished", "finished"]
    assert all(math.isfinite(float(r["val/psnr_y"])) and float(r["latency/ms_1080p"]) > 0 for r in rows)
    assert all(int(r["model/params"]) > 0 for r in rows) and (tmp_path / "out" / "pareto.png").is_file()


def test_cli_help_lists_options():
    out = subprocess.run([sys.executable, "-m", "espcn_lab.cli", "sweep", "--help"], capture_output=True, text=True,
                         env=dict(os.environ, COLUMNS="200")).stdout
    for option in ("--count", "--out", "--check", "--gpus", "--seed"):
        assert option in out
    assert "W&B" in out
