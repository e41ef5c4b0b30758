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
from espcn_lab.deploy.video import VIDEO_EXTS, is_video, upscale_video
from espcn_lab.errors import UserError
from espcn_lab.files import atomic_output, refuse_overwriting_inputs
from espcn_lab.imaging.read import DEFAULT_MAX_PIXELS, is_image_file, read_image


@dataclass
class UpscaleReport:
    """What happened to each input: (input, output) written, (input, message) failed, and (input, message) for
    videos written only as far as they decoded (also in ``written``)."""

    written: list[tuple[Path, Path]] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    incomplete: list[tuple[Path, str]] = field(default_factory=list)


def collect_inputs(paths: list[Path]) -> list[Path]:
    """Files as given; folders expand to their image and video files in name order (not recursive)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith(".")
                           and (is_image_file(p) or is_video(p)))
            if not found:
                raise UserError(f"{path}: no images or videos in this folder")
            files += found
        elif path.exists():
            files.append(path)
        else:
            raise UserError(f"input not found: {path}")
    return files


def output_paths(inputs: list[Path], output: str | Path | None, scale: int) -> list[Path]:
    """Where each input goes: ``NAME_xS.EXT`` beside it by default; ``-o DIR`` keeps the names (DIR exists as a
    folder, ends with a slash, has no extension or there are several inputs); ``-o FILE`` for one input.

    Refused up front, before any work: an output that is one of the inputs, two inputs with one name, an
    image written to a video extension or the other way round, an extension nothing can write.
    """
    if output is None:
        outputs = [p.with_name(f"{p.stem}_x{scale}{p.suffix}") for p in inputs]
    else:
        text, path = str(output), Path(output)
        as_dir = path.is_dir() or text.endswith(("/", "\\")) or len(inputs) > 1 or (not path.suffix and not path.is_file())
        if as_dir and path.exists() and not path.is_dir():
            raise UserError(f"-o {output}: several inputs need an output folder, not a file")
        names = [p.name for p in inputs]
        if as_dir and len(set(names)) != len(names):
            raise UserError("inputs share file names; give them separate output folders")
        outputs = [path / name for name in names] if as_dir else [path]
    for src, dst in zip(inputs, outputs):
        _check_kind(src, dst)
    refuse_overwriting_inputs(inputs, outputs)
    return outputs


def _check_kind(src: Path, dst: Path) -> None:
    from PIL import Image

    if is_video(src) and not is_video(dst):
        raise UserError(f"{src} is a video; write it as a video ({', '.join(VIDEO_EXTS)}), not {dst.suffix or dst.name!r}")
    if not is_video(src) and dst.suffix.lower() not in Image.registered_extensions():
        kind = "a video" if is_video(dst) else "no image format Pillow writes"
        raise UserError(f"{dst}: {dst.suffix or 'no extension'} is {kind}; an image output needs e.g. .png or .jpg")


def load_image(path: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[np.ndarray, dict]:
    """An image file -> ((H, W) or (H, W, C) uint8 with C in 2..4, save options): the one reader, alpha kept."""
    decoded = read_image(path, alpha="keep", max_pixels=max_pixels)
    if decoded.frames > 1:
        raise UserError(f"{path}: an animated or multi-page image ({decoded.frames} frames); upscale it as a video "
                        f"(e.g. ffmpeg -i {path.name} {path.stem}.mkv) or save the frame you want as a PNG")
    return decoded.pixels, ({"icc_profile": decoded.icc_profile} if decoded.icc_profile else {})


def save_image(arr: np.ndarray, path: Path, options: dict) -> None:
    """uint8 (H, W) or (H, W, C) -> file (the format follows the extension), written atomically: a failed
    write never leaves a half file, nor touches a file already there."""
    from PIL import Image

    try:
        with atomic_output(path) as tmp:
            Image.fromarray(arr).save(tmp, format=Image.registered_extensions()[path.suffix.lower()], **options)
    except (KeyError, ValueError) as err:
        raise UserError(f"{path}: cannot write ({err})") from None


def upscale_image_file(upscaler: Upscaler, src: Path, dst: Path, max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
    arr, options = load_image(src, max_pixels)
    save_image(upscaler(arr), dst, options)


def upscale_files(upscaler: Upscaler, inputs: list[Path], output: str | Path | None, batch: int = 4,
                  codec: str = "auto", crf: int = 18, progress: bool = True, on_error=None,
                  max_pixels: int = DEFAULT_MAX_PIXELS, preset: str | None = None) -> UpscaleReport:
    """Upscale every input; failures are collected (and passed to ``on_error``) instead of stopping the batch."""
    from tqdm import tqdm

    files = collect_inputs(inputs)
    report = UpscaleReport()
    images = [f for f in files if not is_video(f)]
    bar = tqdm(total=len(images), unit="img", disable=not progress or len(images) < 2)
    for src, dst in zip(files, output_paths(files, output, upscaler.scale)):
        try:
            if is_video(src):
                done = upscale_video(src, dst, upscaler, upscaler.scale, batch=batch, codec=codec, crf=crf,
                                     progress=progress, preset=preset, yuv=upscaler.yuv420p_runner)
                if not done["complete"]:
                    of = f" of {done['expected_frames']}" if done["expected_frames"] else ""
                    why = f" ({done['decode_error']})" if done["decode_error"] else ""
                    message = f"{src}: only {done['frames']}{of} frames could be decoded{why}; {dst} holds those"
                    report.incomplete.append((src, message))
                    if on_error:
                        on_error(message)
            else:
                upscale_image_file(upscaler, src, dst, max_pixels)
                bar.update()
            report.written.append((src, dst))
        except UserError as err:
            report.failed.append((src, str(err)))
            if on_error:
                on_error(str(err))
    bar.close()
    return report
