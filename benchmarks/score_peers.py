"""Score OpenCV's distributed super-resolution models and ours under the standard protocol.

Protocol (the one of every published table and of ``espcn-lab eval``): modcrop the HR image, make
the LR image with MATLAB-compatible bicubic, score PSNR-Y / SSIM-Y with ``scale`` pixels shaved.
OpenCV's ``dnn_superres`` models get the LR colour image through their own ``upsample`` (their own
colour handling, as a user would call them); grey images (Set14 ``bridge``) are scored on their grey
values. Needs the optional extra: ``pip install -e '.[peers]'`` (opencv-contrib-python-headless).

    python benchmarks/score_peers.py --data Set5=../shared/data/Set5 --data Set14=../shared/data/Set14 \
        --peers ../shared/data/peers/opencv_dnn_superres --ours x2 --ours x3 --ours x4 --json benchmarks/results/peers.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from espcn_lab.evaluate.metrics import psnr_y, ssim_y
from espcn_lab.evaluate.protocol import make_eval_pair
from espcn_lab.evaluate.run import evaluate, parse_datasets
from espcn_lab.imaging.colour import rgb_to_y
from espcn_lab.imaging.degrade import DegradationSpec, degrade, modcrop, upscale_bicubic
from espcn_lab.imaging.read import iter_hr_images
from espcn_lab.paths import peer_models

PEERS = {"OpenCV ESPCN": ("ESPCN", "ESPCN_x{s}.pb", "espcn"),
         "OpenCV FSRCNN": ("FSRCNN", "FSRCNN_x{s}.pb", "fsrcnn"),
         "OpenCV FSRCNN-small": ("FSRCNN", "FSRCNN-small_x{s}.pb", "fsrcnn")}
BICUBIC = DegradationSpec("bicubic")


def peer_upsampler(peers_dir: Path, name: str, scale: int):
    """A function uint8 RGB (h, w, 3) -> uint8 RGB (h*s, w*s, 3) through cv2.dnn_superres."""
    import cv2

    folder, pattern, algo = PEERS[name]
    sr = cv2.dnn_superres.DnnSuperResImpl_create()
    path = peers_dir / folder / pattern.format(s=scale)
    try:  # as in `bench`: OpenCV 5's dnn no longer reads dnn_superres's TensorFlow .pb files
        sr.readModel(str(path))
    except cv2.error:
        raise SystemExit(f"score_peers: OpenCV {cv2.__version__} cannot read {path} (dnn_superres's .pb models "
                         "need OpenCV 4: pip install 'opencv-contrib-python-headless>=4.9,<5')") from None
    sr.setModel(algo, scale)
    return lambda rgb: sr.upsample(np.ascontiguousarray(rgb[..., ::-1]))[..., ::-1]


def score_peer(upsample, folder: str, scale: int) -> dict[str, float]:
    """Mean PSNR-Y / SSIM-Y of one peer over a folder (LR made from the RGB image, bicubic)."""
    psnrs, ssims = [], []
    for name, hr in iter_hr_images(folder):
        grey = hr.ndim == 2
        rgb = modcrop(np.repeat(hr[..., None], 3, axis=2) if grey else hr, scale)
        out = upsample(degrade(rgb, scale))
        sr_y = np.round(out.astype(np.float64).mean(axis=2)).astype(np.uint8) if grey else rgb_to_y(out)
        gt_y = make_eval_pair(name, hr, scale, BICUBIC, 1).gt_y
        psnrs.append(psnr_y(sr_y, gt_y, scale))
        ssims.append(ssim_y(sr_y, gt_y, scale))
    return {"psnr_y": float(np.mean(psnrs)), "ssim_y": float(np.mean(ssims))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", action="append", required=True, help="NAME=DIR of HR images")
    parser.add_argument("--peers", type=Path, default=peer_models())
    parser.add_argument("--ours", action="append", default=[], help="x2|x3|x4 or a checkpoint (repeatable)")
    parser.add_argument("--scales", default="2,3,4")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    datasets = parse_datasets(args.data)
    rows: dict[str, dict] = {}
    for scale in (int(s) for s in args.scales.split(",")):
        for set_name, folder in datasets.items():
            cell = rows.setdefault(f"x{scale}", {}).setdefault(set_name, {})
            pairs = [make_eval_pair(n, hr, scale, BICUBIC, 1) for n, hr in iter_hr_images(folder)]
            cell["bicubic"] = {"psnr_y": float(np.mean([psnr_y(upscale_bicubic(p.lq, scale), p.gt_y, scale) for p in pairs])),
                               "ssim_y": float(np.mean([ssim_y(upscale_bicubic(p.lq, scale), p.gt_y, scale) for p in pairs]))}
            for peer in PEERS:
                cell[peer] = score_peer(peer_upsampler(args.peers, peer, scale), folder, scale)
    for spec in args.ours:
        result = evaluate(spec, datasets)
        for set_name, scores in result["datasets"].items():
            rows[f"x{result['scale']}"][set_name][f"ours ({spec})"] = scores["model"]
    for scale, sets in rows.items():
        for set_name, methods in sets.items():
            print(f"\n{set_name} {scale}")
            for method, s in methods.items():
                print(f"  {method:<24}{s['psnr_y']:>8.2f}{s['ssim_y']:>9.4f}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
