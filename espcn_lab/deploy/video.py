"""Video in and out: streaming decode (PyAV) -> batched model -> encode, audio copied untouched.

Memory stays flat for any length: at most ``batch`` decoded frames and ``batch`` upscaled frames
are alive at once, and encoding runs on its own thread so the codec overlaps the model. Frame
count and frame rate are preserved. ``iter_frames`` also serves evaluation (video files or folders
of frames, as the paper's video tables score them).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from espcn_lab.errors import UserError
from espcn_lab.imaging.read import list_images, read_image

VIDEO_EXTS = (".mp4", ".mkv", ".mov", ".y4m", ".avi", ".webm", ".m4v")


RGB_CODECS = {"ffv1": "bgr0", "libx264rgb": "rgb24", "png": "rgb24", "qtrle": "rgb24"}


FrameFn = Callable[[np.ndarray], np.ndarray]  # (B, h, w, 3) uint8 -> (B, h*s, w*s, 3) uint8


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTS


def _open(path: Path):
    import av

    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise UserError(f"{path}: cannot open as video ({err})") from None


def iter_frames(path: str | Path) -> Iterator[np.ndarray]:
    """RGB frames (H, W, 3) uint8 of a video file, or of a folder of images in name order."""
    path = Path(path)
    if path.is_dir():
        for file in list_images(path):
            yield read_image(file, grey="rgb").pixels
        return
    with _open(path) as container:
        if not container.streams.video:
            raise UserError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for frame in container.decode(stream):
            yield frame.to_ndarray(format="rgb24")


def named_frames(path: str | Path) -> tuple[Iterator[tuple[str, np.ndarray]], int | None]:
    """``(name, (H, W, 3) uint8 RGB)`` frames of a video for scoring, and the count when the container knows it."""
    path = Path(path)
    with _open(path) as container:
        count = container.streams.video[0].frames if container.streams.video else 0
    frames = ((f"frame_{i:06d}", frame) for i, frame in enumerate(iter_frames(path), 1))
    return frames, count or None


def _pick_codec(dst: Path, codec: str) -> str:
    import av

    if codec != "auto":
        if codec not in av.codecs_available:
            raise UserError(f"codec {codec!r} is not available in this PyAV build")
        return codec
    if dst.suffix.lower() == ".y4m":
        return "rawvideo"
    if dst.suffix.lower() == ".webm":
        return "libvpx-vp9"
    return "libx264" if "libx264" in av.codecs_available else "mpeg4"


def _add_video_stream(out, codec: str, rate: Fraction, width: int, height: int, crf: int,
                      preset: str | None = None):
    stream = out.add_stream(codec, rate=rate)
    stream.width, stream.height = width, height
    even = width % 2 == 0 and height % 2 == 0
    if codec in RGB_CODECS:  # lossless RGB: the upscaled frames survive bit-exactly
        stream.pix_fmt = RGB_CODECS[codec]
    else:
        stream.pix_fmt = "yuv420p" if even or codec not in ("libx264", "libx265") else "yuv444p"
    if codec in ("libx264", "libx265", "libvpx-vp9"):
        stream.options = {"crf": str(crf)}
    if preset:  # x264/x265 speed preset (ultrafast .. veryslow); the encoder's own default otherwise
        if codec not in ("libx264", "libx265"):
            raise UserError(f"--preset applies to libx264 and libx265, not {codec}")
        stream.options = {**stream.options, "preset": preset}
    return stream


def _encoder(out, stream, jobs: queue.Queue, errors: list, lock: threading.Lock) -> None:
    """Encode frames from ``jobs`` until None arrives (runs on its own thread; PyAV releases the GIL)."""
    import av

    item = ()
    try:
        while (item := jobs.get()) is not None:
            index, rgb = item
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            frame.pts = index
            packets = stream.encode(frame)
            with lock:
                out.mux(packets)
        packets = stream.encode(None)
        with lock:
            out.mux(packets)
    except Exception as err:  # surfaced on the main thread
        errors.append(err)
        while item is not None:  # drain until the end mark, unless the flush after it failed (it was seen)
            item = jobs.get()


def upscale_video(src: str | Path, dst: str | Path, frame_fn: FrameFn, scale: int, batch: int = 4,
                  codec: str = "auto", crf: int = 18, progress: bool = True, preset: str | None = None) -> dict:
    """Stream ``src`` through ``frame_fn`` into ``dst``; returns {frames, fps, width, height, audio_streams}."""
    import av
    from tqdm import tqdm

    src, dst = Path(src), Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    with _open(src) as inp:
        if not inp.streams.video:
            raise UserError(f"{src}: no video stream")
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        codec_name = _pick_codec(dst, codec)
        with _open_output(dst) as out:
            vout = _add_video_stream(out, codec_name, rate, vin.codec_context.width * scale,
                                     vin.codec_context.height * scale, crf, preset)
            audio, dropped = _copy_audio_streams(inp, out)
            jobs: queue.Queue = queue.Queue(maxsize=2 * batch)
            errors: list = []
            lock = threading.Lock()  # the muxer is shared by the encoder thread and the audio copy
            worker = threading.Thread(target=_encoder, args=(out, vout, jobs, errors, lock), daemon=True)
            worker.start()
            bar = tqdm(total=vin.frames or None, unit="frame", disable=not progress, desc=src.name)
            try:
                count = _pump(inp, vin, audio, out, frame_fn, batch, jobs, bar, errors, lock)
            except av.error.FFmpegError as err:  # muxing audio can meet a failed encoder first
                errors.append(err)
            finally:
                jobs.put(None)
                worker.join()
                bar.close()
            if errors:
                raise UserError(f"{dst}: encoding failed ({errors[0]})")
    return {"frames": count, "fps": float(rate), "width": vout.width, "height": vout.height,
            "audio_streams": len(audio), "audio_dropped": dropped, "codec": codec_name}


def _copy_audio_streams(inp, out) -> tuple[dict, list[str]]:
    """Output twins of the input's audio streams; codecs the container cannot hold are listed, not fatal."""
    audio, dropped = {}, []
    for stream in inp.streams.audio:
        try:
            audio[stream] = out.add_stream_from_template(stream)
        except ValueError:
            dropped.append(stream.codec_context.name)
    return audio, dropped


def _open_output(dst: Path):
    import av

    try:
        return av.open(str(dst), "w")
    except (av.error.FFmpegError, ValueError) as err:
        raise UserError(f"{dst}: cannot write this video format ({err})") from None


def _pump(inp, vin, audio: dict, out, frame_fn: FrameFn, batch: int, jobs: queue.Queue, bar, errors: list,
          lock: threading.Lock) -> int:
    """Demux: video frames -> batches -> ``frame_fn`` -> encoder queue; audio packets muxed as they come."""
    pending: list[np.ndarray] = []
    count = 0

    def flush() -> None:
        nonlocal count
        for rgb in frame_fn(np.stack(pending)):
            jobs.put((count, rgb))
            count += 1
        bar.update(len(pending))
        pending.clear()

    for packet in inp.demux(vin, *audio):
        if errors:
            break
        if packet.stream is vin:
            for frame in packet.decode():
                pending.append(frame.to_ndarray(format="rgb24"))
                if len(pending) == batch:
                    flush()
        elif packet.dts is not None:
            packet.stream = audio[packet.stream]
            with lock:
                out.mux(packet)
    if pending:
        flush()
    return count
