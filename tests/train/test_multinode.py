"""Two nodes for real: two `torchrun --nnodes 2 --nproc-per-node 1` launches of `espcn-lab fit` on this machine
(gloo, CPU), on shards with different pair counts. Both ranks end at the same step; a rank that dies or hangs
ends the other with one line, not a hang."""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import torch
from _shards import noise_images, write_shards
from PIL import Image

from espcn_lab.imaging.read import iter_hr_images

# ~90 s together on 2 busy cores: outside the default run (`pytest -m slow` runs them)
pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not installed")]
ENV = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def uneven(tmp_path_factory, shared_data):
    root = tmp_path_factory.mktemp("nodes")
    shards = write_shards(root / "shards", noise_images(3, size=96) + noise_images(3, size=160, seed=1), n_shards=2)
    pairs = [s["pairs"] for s in json.loads((shards / "manifest.json").read_text())["splits"]["train"]["shards"]]
    assert len(pairs) == 2 and pairs[0] != pairs[1]  # uneven: each rank reads one shard of its own size
    (root / "val").mkdir()
    for name, img in list(iter_hr_images(shared_data / "Set5"))[:1]:
        Image.fromarray(img[:48, :60]).save(root / "val" / f"{name}.png")
    return root, shards


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _nodes(root: Path, shards: Path, name: str, *extra: str) -> list[subprocess.Popen]:
    """Node 0 and node 1: `torchrun --nnodes 2 --nproc-per-node 1 --node-rank N ... --no-python espcn-lab fit`."""
    port, procs = _free_port(), []
    args = [f"data.train_shards={shards}", "data.val_dirs={}", f"data.val_dirs.V={root / 'val'}", "model.features=[8,4]",
            "data.samples_per_epoch=256", "data.batch_size=16", "data.shuffle_buffer=32", f"run.dir={root / 'runs'}",
            f"run.name={name}", "log.latency=false", "trainer.accelerator=cpu", "trainer.num_nodes=2",
            "trainer.devices=1", "trainer.strategy=ddp", *extra]
    for node in (0, 1):
        cmd = ["torchrun", "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(node), "--master-addr",
               "127.0.0.1", "--master-port", str(port), "--no-python", "espcn-lab", "fit", "configs/smoke.yaml", *args]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=ENV))
    return procs


def _worker(agent: subprocess.Popen) -> int:
    """The `espcn-lab fit` process a torchrun agent started."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        children = Path(f"/proc/{agent.pid}/task/{agent.pid}/children").read_text().split()
        if children:
            return int(children[0])
        time.sleep(0.1)
    raise AssertionError("torchrun started no worker")


def _wait_for_checkpoint(run: Path, procs) -> None:
    deadline = time.monotonic() + 180
    while not (run / "last.ckpt").is_file():
        assert time.monotonic() < deadline and all(p.poll() is None for p in procs), "no checkpoint"
        time.sleep(0.2)


def test_two_nodes_on_uneven_shards_end_at_the_same_step(uneven):
    root, shards = uneven
    logs = [p.communicate(timeout=300)[0] for p in _nodes(root, shards, "two", "trainer.max_epochs=3")]
    assert "status=finished epochs=3 steps=24" in logs[0], logs[0][-3000:]  # 256 pairs / (16 x 2 ranks) x 3 epochs
    assert f"run: {root / 'runs' / 'two'}" in logs[0]
    assert "espcn-lab: rank 1: status=finished epochs=3 steps=24" in logs[1], logs[1][-3000:]
    summary = json.loads((root / "runs" / "two" / "summary.json").read_text())
    assert summary["steps"] == 24 and summary["global_rank"] == 0  # only rank 0 writes the run folder
    assert [p.name for p in (root / "runs").iterdir()] == ["two"]


def _assert_node0_stopped_in_one_line(node0: subprocess.Popen, started: float, name: str, root: Path) -> str:
    log = node0.communicate(timeout=60)[0]
    assert node0.returncode != 0 and time.monotonic() - started < 60
    ours = [line for line in log.splitlines() if line.startswith("espcn-lab: error: rank 0: lost the other ranks")]
    assert len(ours) == 1, log[-3000:]
    run = root / "runs" / name
    assert json.loads((run / "summary.json").read_text())["status"] == "failed"
    assert torch.load(run / "last.ckpt", weights_only=True)["global_step"] > 0  # what there was, whole
    return ours[0]


def test_a_killed_rank_ends_the_other_with_one_line_within_a_minute(uneven):
    root, shards = uneven
    node0, node1 = _nodes(root, shards, "killed", "trainer.max_epochs=1000")
    _wait_for_checkpoint(root / "runs" / "killed", (node0, node1))
    started = time.monotonic()
    os.kill(_worker(node1), signal.SIGKILL)
    line = _assert_node0_stopped_in_one_line(node0, started, "killed", root)
    assert "Connection" in line or "closed" in line, line
    node1.communicate(timeout=60)
    assert node1.returncode != 0


def test_a_hung_rank_ends_the_other_after_trainer_ddp_timeout_s(uneven):
    root, shards = uneven
    node0, node1 = _nodes(root, shards, "hung", "trainer.max_epochs=1000", "trainer.ddp_timeout_s=5")
    _wait_for_checkpoint(root / "runs" / "hung", (node0, node1))
    worker = _worker(node1)
    started = time.monotonic()
    os.kill(worker, signal.SIGSTOP)  # alive but silent: only the timeout can tell
    try:
        _assert_node0_stopped_in_one_line(node0, started, "hung", root)
        assert time.monotonic() - started < 30
    finally:
        os.kill(worker, signal.SIGKILL)
        node1.communicate(timeout=60)


def test_sigterm_to_one_rank_stops_every_rank_after_the_same_step_and_resume_continues(uneven):
    """The ranks agree on the stop (an all-reduce every few steps), so all save and exit 143 at the same step."""
    root, shards = uneven
    node0, node1 = _nodes(root, shards, "stopped", "trainer.max_epochs=1000")
    _wait_for_checkpoint(root / "runs" / "stopped", (node0, node1))
    os.kill(_worker(node1), signal.SIGTERM)
    logs = [p.communicate(timeout=60)[0] for p in (node0, node1)]
    last = root / "runs" / "stopped" / "last.ckpt"
    step = torch.load(last, weights_only=True)["global_step"]
    assert f"espcn-lab: terminated by SIGTERM; {last} holds step {step}" in logs[0], logs[0][-3000:]
    assert f"espcn-lab: rank 1: terminated by SIGTERM; {last} holds step {step}" in logs[1], logs[1][-3000:]
    assert all("exitcode  : 143" in log for log in logs)  # torchrun's report of each worker's exit
    epochs = step // 8 + 2  # 8 steps per epoch on 2 ranks
    logs = [p.communicate(timeout=300)[0] for p in _nodes(root, shards, "stopped", "run.resume=last",
                                                           f"trainer.max_epochs={epochs}")]
    assert f"status=finished epochs={epochs} steps={8 * epochs}" in logs[0], logs[0][-3000:]
    assert f"espcn-lab: rank 1: status=finished epochs={epochs} steps={8 * epochs}" in logs[1], logs[1][-3000:]
