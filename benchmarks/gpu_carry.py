"""Fill .carry/ with what benchmarks/gpu_session.sh needs on the device, within the device tool's 64 MiB.

    python benchmarks/gpu_carry.py --shards shards --out .carry

From the shard folders the shipped models were trained on (README, "How the shipped models were trained"):
the training split's source images (the device cuts its own shards: ~41 MiB of images against ~120 MiB of shards at x3 alone;
an RGB PNG travels as its BT.601 Y, which is all a Y network's prep and refit read of it, at a third of the size),
the DIV2K and BSDS500 photos `prep --val-images` held out (validation during the GPU runs), Set5 for the GPU
tests, the stock reference script, and the wheels the device's Python lacks. Nothing from an evaluation set is
trained on or validated with; Set5 only feeds the tests' parity checks.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

from espcn_lab.errors import UserError
from espcn_lab.imaging.colour import network_hr
from espcn_lab.imaging.read import read_image
from espcn_lab.shards.locate import source_images

# what the device image lacks for prep/fit/refit/bench (docs: ../.library/device/KINDS.md, "Python packages")
WHEELS = ["webdataset==1.0.2", "braceexpand==0.1.7", "resize-right==0.0.2", "omegaconf==2.4.0"]
LIMIT_MB = 50  # 64 MiB with the working tree (~13 MiB)


def copy_all(paths: list[Path], dest: Path, *, luma: bool = False) -> None:
    """Copy files; with ``luma``, an RGB PNG becomes the greyscale PNG of its Y (prep and refit of a Y network
    read the same pixels from both: a greyscale image is taken as its own Y)."""
    dest.mkdir(parents=True, exist_ok=True)
    for p in paths:
        pixels = read_image(p).pixels if luma and p.suffix.lower() == ".png" else None
        if pixels is not None and pixels.ndim == 3:
            Image.fromarray(np.ascontiguousarray(network_hr(pixels, 1))).save(dest / p.name, optimize=True)
        else:
            shutil.copy2(p, dest / p.name)


def size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / 2**20


def main() -> int:
    try:
        return carry()
    except (OSError, UserError, subprocess.CalledProcessError) as err:  # a missing shard folder, data or reference
        print(f"error: {err}", file=sys.stderr)
        return 2


def carry() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shards", type=Path, default=Path("shards"), help="folder with bsdsv-x3, div2k-x3, t91-x3")
    ap.add_argument("--out", type=Path, default=Path(".carry"))
    ap.add_argument("--data", type=Path, default=Path("../shared/data"), help="holds Set5 (for the GPU tests)")
    ap.add_argument("--reference", type=Path, default=Path("../shared/tools/gpu_reference.py"))
    ap.add_argument("--no-wheels", action="store_true", help="skip the pip download (a dry run on this machine)")
    args = ap.parse_args()
    for ours in ("src", "heldout", "data", "whl"):  # a rerun replaces what it wrote, and nothing else in --out
        shutil.rmtree(args.out / ours, ignore_errors=True)
    # the split is the same at every scale (prep's held-out choice is seeded by the file list, not the scale)
    for src, name in (("bsdsv-x3", "bsds500_test"), ("div2k-x3", "div2k_grey"), ("t91-x3", "T91")):
        copy_all(source_images(str(args.shards / src), "train"), args.out / "src" / name, luma=True)
    for src, name in (("div2k-x3", "div2k"), ("bsdsv-x3", "bsds")):
        copy_all(source_images(str(args.shards / src), "val"), args.out / "heldout" / name)
    shutil.copytree(args.data / "Set5", args.out / "data" / "Set5")
    shutil.copy2(args.reference, args.out / "gpu_reference.py")
    if not args.no_wheels:
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                        "--python-version", "3.12", "--implementation", "cp", "--platform", "manylinux_2_28_x86_64",
                        "--platform", "manylinux_2_17_x86_64", "-d", str(args.out / "whl"), *WHEELS], check=True)
    total = size_mb(args.out)
    for sub in sorted(p for p in args.out.iterdir() if p.is_dir()):
        print(f"{sub}: {size_mb(sub):.1f} MiB")
    print(f"{args.out}: {total:.1f} MiB in all")
    if total > LIMIT_MB:
        print(f"error: {args.out} is {total:.1f} MiB, over the {LIMIT_MB} MiB that fit beside the working tree",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
