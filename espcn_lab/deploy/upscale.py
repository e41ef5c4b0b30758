"""``espcn-lab upscale``: images, folders of images (or frames) and videos in, upscaled files out.

Images keep their mode (L, LA, RGB, RGBA; palette and other modes become RGB/RGBA) and ICC
profile; EXIF orientation is applied before upscaling. A file that fails is reported on one line
and counted, and the rest of the batch still runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from espcn_lab.deploy.infer import Upscaler
from espcn_lab.deploy.video import is_video, upscale_video
from espcn_lab.errors import UserError


@dataclass
class UpscaleReport:
    """What happened to each input: (input, output) written, (input, message) failed."""

    written: list[tuple[Path, Path]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)


def _image_exts() -> set[str]:
    from PIL import Image

    return set(Image.registered_extensions())


def collect_inputs(paths: list[Path]) -> list[Path]:
    """Files as given; folders expand to their image and video files in name order (not recursive)."""
    exts = _image_exts()
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                           and (p.suffix.lower() in exts or is_video(p)))
            if not found:
                raise UserError(f"{path}: no images or videos in this folder")
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise UserError(f"input not found: {path}")
    return files


def output_paths(inputs: list[Path], output: Path | None, scale: int) -> list[Path]:
    """``-o DIR`` (existing folder, trailing slash or several inputs) keeps names; ``-o FILE`` for one input."""
    if output is None:
        return [p.with_name(f"{p.stem}_x{scale}{p.suffix}") for p in inputs]
    as_dir = output.is_dir() or str(output).endswith(("/", "\\")) or len(inputs) > 1
    if as_dir:
        if output.exists() and not output.is_dir():
            raise UserError(f"-o {output}: several inputs need an output folder, not a file")
        names = [p.name for p in inputs]
        if len(set(names)) != len(names):
            raise UserError("inputs share file names; give them separate output folders")
        return [output / name for name in names]
    return [output]


def load_image(path: Path) -> tuple[np.ndarray, dict]:
    """Any Pillow image -> ((H, W) or (H, W, C) uint8 with C in 2..4, save options), EXIF orientation applied."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            icc = img.info.get("icc_profile")
            has_alpha = img.mode in ("RGBA", "LA", "PA") or "transparency" in img.info
            if img.mode not in ("L", "LA", "RGB", "RGBA"):
                img = img.convert("RGBA" if has_alpha else "RGB")
            arr = np.asarray(img)
    except UnidentifiedImageError:
        raise UserError(f"{path}: not an image Pillow can read") from None
    except OSError as err:
        raise UserError(f"{path}: cannot read image ({err})") from None
    return arr, ({"icc_profile": icc} if icc else {})


def save_image(arr: np.ndarray, path: Path, options: dict) -> None:
    """uint8 (H, W) or (H, W, C) -> file; the format follows the extension."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        Image.fromarray(arr).save(path, **options)
    except (KeyError, ValueError, OSError) as err:
        path.unlink(missing_ok=True)
        raise UserError(f"{path}: cannot write ({err})") from None


def upscale_image_file(upscaler: Upscaler, src: Path, dst: Path) -> None:
    arr, options = load_image(src)
    save_image(upscaler(arr), dst, options)


def upscale_files(upscaler: Upscaler, inputs: list[Path], output: Path | None, batch: int = 4,
                  codec: str = "auto", crf: int = 18, progress: bool = True, on_error=None,
                  preset: str | None = None) -> UpscaleReport:
    """Upscale every input; failures are collected (and passed to ``on_error``) instead of stopping the batch."""
    from tqdm import tqdm

    files = collect_inputs(inputs)
    report = UpscaleReport()
    images = [f for f in files if not is_video(f)]
    bar = tqdm(total=len(images), unit="img", disable=not progress or len(images) < 2)
    for src, dst in zip(files, output_paths(files, output, upscaler.scale)):
        try:
            if is_video(src):
                upscale_video(src, dst, upscaler, upscaler.scale, batch=batch, codec=codec, crf=crf, progress=progress,
                              preset=preset)
            else:
                upscale_image_file(upscaler, src, dst)
                bar.update()
            report.written.append((src, dst))
        except UserError as err:
            report.failed.append((src, str(err)))
            if on_error:
                on_error(str(err))
    bar.close()
    return report
