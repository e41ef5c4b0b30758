"""Shared fixtures: the real data in ../shared/data, tiny seeded images."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from espcn_lab import paths

SHARED_DATA = paths.shared_data()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA} (set ESPCN_LAB_DATA)")
    return SHARED_DATA


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    """No test contacts W&B or the Hugging Face hub, whatever the caller's environment says."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    """Four shards of 8 seeded noise images cut by prep (gaussian degradation, sigma 1)."""
    from _shards import noise_images, write_shards

    from espcn_lab.imaging.degrade import DegradationSpec

    return write_shards(tmp_path_factory.mktemp("shards"), noise_images(8), scale=3, n_shards=4,
                        degradation=DegradationSpec("gaussian", 1.0))


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs to fill (a real ENOSPC), where this machine lets the tests mount one (root); else skip:
    each fault test has a monkeypatched twin that runs everywhere."""
    import subprocess

    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)
