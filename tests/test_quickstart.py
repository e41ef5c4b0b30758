"""The README's first command, end to end through the real CLI (with a short time budget)."""

import json
import os
import subprocess
import sys


def test_quickstart_preps_trains_and_prints_the_set5_table(tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    done = subprocess.run([sys.executable, "-m", "espcn_lab.cli", "quickstart", "--out", str(tmp_path), "--minutes", "0.1"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "bicubic       30.39" in done.stdout  # the published Set5 x3 bicubic figure
    results = json.loads((tmp_path / "eval.json").read_text())
    assert results["scale"] == 3 and len(results["datasets"]["Set5"]["images"]) == 5
    manifest = json.loads((tmp_path / "shards-x3" / "manifest.json").read_text())
    assert manifest["counts"]["used"] == 16 and manifest["splits"]["train"]["pairs"] > 1000


def test_quickstart_refuses_a_non_positive_budget(tmp_path):
    done = subprocess.run([sys.executable, "-m", "espcn_lab.cli", "quickstart", "--out", str(tmp_path), "--minutes", "0"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and done.stderr.strip() == "espcn-lab: error: --minutes must be > 0, got 0.0"
