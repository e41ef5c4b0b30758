"""The README's first command, end to end through the real CLI (with a short step budget)."""

import json
import os
import subprocess
import sys


def test_quickstart_preps_trains_and_prints_the_set5_table(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    # a step budget (the same model on any machine) with the old time flag as a cap that is not reached
    done = subprocess.run([sys.executable, "-m", "espcn_lab.cli", "quickstart", "--out", str(tmp_path), "--steps", "40",
                           "--minutes", "10"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "bicubic       30.39" in done.stdout  # the published Set5 x3 bicubic figure
    assert "[2/3] fit: the paper's x3 network for 40 steps, at most 10 min" in done.stdout
    progress = [line for line in done.stderr.splitlines() if line.startswith("step ")]
    assert progress and progress[-1].startswith("step 40/40 (100%), ") and "steps/s" in progress[-1]
    summary = json.loads(next((tmp_path / "runs").glob("*/summary.json")).read_text())
    assert summary["status"] == "finished" and summary["steps"] == 40
    results = json.loads((tmp_path / "eval.json").read_text())
    assert results["scale"] == 3 and len(results["datasets"]["Set5"]["images"]) == 5
    manifest = json.loads((tmp_path / "shards-x3" / "manifest.json").read_text())
    assert manifest["counts"]["used"] == 16 and manifest["splits"]["train"]["pairs"] > 1000


def test_quickstart_refuses_a_non_positive_budget(tmp_path, capsys):
    import pytest

    from espcn_lab.cli import main

    for flag, value, message in [("--minutes", "0", "--minutes must be > 0, got 0.0"),
                                 ("--steps", "0", "--steps must be >= 1, got 0")]:
        with pytest.raises(SystemExit) as exited:
            main(["quickstart", "--out", str(tmp_path), flag, value])
        assert exited.value.code == 2 and capsys.readouterr().err.strip() == f"espcn-lab: error: {message}"
    assert not any(tmp_path.iterdir())  # refused before anything is made
