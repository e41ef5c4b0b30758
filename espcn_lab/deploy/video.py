"""Video in and out: streaming decode (PyAV) -> batched model -> encode, audio copied untouched.

Memory stays flat for any length: at most ``batch`` decoded frames and ``batch`` upscaled frames
are alive at once, and encoding runs on its own thread so the codec overlaps the model. Frame
count and frame rate are preserved. Frames travel as RGB (``frame_fn``), or, where the caller offers
a YUV frame function (``yuv``: the CPU upscaler's) and the formats allow it (yuv420p in, limited range,
even sides, a yuv420p encoder out), as yuv420p planes from decoder to encoder with no colour
conversion. ``iter_frames`` also serves evaluation (video files or folders of frames, as the paper's
video tables score them).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from espcn_lab.errors import UserError
from espcn_lab.files import atomic_output
from espcn_lab.imaging.read import check_regular_file, list_images, read_image

VIDEO_EXTS = (".mp4", ".mkv", ".mov", ".y4m", ".avi", ".webm", ".m4v")


RGB_CODECS = {"ffv1": "bgr0", "libx264rgb": "rgb24", "png": "rgb24", "qtrle": "rgb24"}


_FORMATS = {".mkv": "matroska", ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".webm": "webm", ".avi": "avi",
            ".y4m": "yuv4mpegpipe"}  # the muxer of each extension (the temporary name must not decide it)
FrameFn = Callable[[np.ndarray], np.ndarray]  # (B, h, w, 3) uint8 -> (B, h*s, w*s, 3) uint8
YuvFn = Callable[[int, int], "FrameFn | None"]  # LR (height, width) -> yuv420p (B, h*3/2, w) -> (B, H*3/2, W), or None


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_EXTS


def _open(path: Path):
    import av

    check_regular_file(Path(path))  # a FIFO named x.mkv would block the demuxer for good
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise UserError(f"{path}: cannot open as video ({err})") from None


def frame_pixels(frame, pix_fmt: str) -> np.ndarray:
    """A decoded frame's pixels in ``pix_fmt`` through a single-threaded swscale context. PyAV 18.1.1 keeps one
    reformatter per thread for reuse; with FFmpeg's default (one slice thread per core) a process that forks
    from another thread (a DataLoader started off the main thread, a test runner) frees this thread's copy in
    the child, whose slice threads were not forked, and the child hangs in ``pthread_cond_destroy``. One
    thread has nothing to wait for, and the conversion is a small share of a frame's time next to the model."""
    return frame.to_ndarray(format=pix_fmt, threads=1)


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
            yield frame_pixels(frame, "rgb24")


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


def _pick_path(vin, vout, frame_fn: FrameFn, yuv: YuvFn | None) -> tuple[str, FrameFn]:
    """The pixel format frames take from decoder to encoder and the frame function for it: yuv420p when ``yuv``
    has one for this size and the input (yuv420p, not full range) and the encoder (yuv420p) both are, else RGB."""
    ctx = vin.codec_context
    if yuv is not None and vout.pix_fmt == "yuv420p" and ctx.pix_fmt == "yuv420p" and ctx.color_range != 2:
        fn = yuv(ctx.height, ctx.width)  # None for odd sides, other devices, ... (the upscaler says)
        if fn is not None:
            for key in ("colorspace", "color_primaries", "color_trc", "color_range"):  # the planes pass through
                setattr(vout.codec_context, key, getattr(ctx, key))
            return "yuv420p", fn
    return "rgb24", frame_fn


def _encoder(out, stream, pix_fmt: str, jobs: queue.Queue, errors: list, lock: threading.Lock) -> None:
    """Encode frames from ``jobs`` until None arrives (runs on its own thread; PyAV releases the GIL)."""
    import av

    item = ()
    try:
        while (item := jobs.get()) is not None:
            index, pixels = item  # wrapped, not copied: each batch's output array is the frame's buffer
            frame = av.VideoFrame.from_numpy_buffer(np.ascontiguousarray(pixels), format=pix_fmt)
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
                  codec: str = "auto", crf: int = 18, progress: bool = True, preset: str | None = None,
                  yuv: YuvFn | None = None) -> dict:
    """Stream ``src`` through ``frame_fn`` into ``dst``; returns {frames, expected_frames, complete, fps, ...}.

    ``yuv`` (e.g. ``Upscaler.yuv420p_runner``) offers a yuv420p frame function for an LR size; where it gives
    one and the formats allow, frames take it instead of ``frame_fn`` (``frame_path`` says which ran).

    ``dst`` is written under a temporary name and renamed when the stream is complete, so a failure (an
    encoder error, a full disk, Ctrl-C) leaves no half video under the final name and never touches a file
    already there. A video with no decodable frame writes nothing (UserError). One that stops decoding early
    (truncated or damaged) is written as far as it decodes, and ``complete`` is False.
    """

    src, dst = Path(src), Path(dst)
    with _open(src) as inp:
        if not inp.streams.video:
            raise UserError(f"{src}: no video stream")
        vin = inp.streams.video[0]
        vin.thread_type = "AUTO"
        rate = vin.average_rate or vin.guessed_rate or Fraction(25)
        codec_name = _pick_codec(dst, codec)
        with atomic_output(dst) as tmp:
            with _open_output(tmp, dst) as out:
                vout = _add_video_stream(out, codec_name, rate, vin.codec_context.width * scale,
                                         vin.codec_context.height * scale, crf, preset)
                audio, dropped = _copy_audio_streams(inp, out)
                path = _pick_path(vin, vout, frame_fn, yuv)
                count, decode_error = _encode_all(inp, vin, audio, out, vout, path, batch, progress, src, dst)
                width, height = vout.width, vout.height  # read while open: PyAV 18.1.1 refuses a closed container's streams
            if count == 0:
                raise UserError(f"{src}: no video frame could be decoded" + (f" ({decode_error})" if decode_error else "")
                                + "; nothing written")
        expected = _expected_frames(inp, vin, rate)
    complete = decode_error is None and (expected is None or count >= expected)
    return {"frames": count, "expected_frames": expected, "complete": complete, "decode_error": decode_error,
            "fps": float(rate), "width": width, "height": height, "audio_streams": len(audio),
            "audio_dropped": dropped, "codec": codec_name, "frame_path": path[0]}


def _expected_frames(inp, vin, rate: Fraction) -> int | None:
    """How many frames the container says the video has: the stream's count, else its duration (Matroska keeps
    it as a tag), else the container's when there is nothing but video; None when it does not say."""
    if vin.frames:
        return int(vin.frames)
    seconds = None
    if vin.duration and vin.time_base:
        seconds = float(vin.duration * vin.time_base)
    elif "DURATION" in vin.metadata:
        h, m, sec = vin.metadata["DURATION"].split(":")
        seconds = int(h) * 3600 + int(m) * 60 + float(sec)
    elif inp.duration and len(inp.streams) == 1:
        seconds = inp.duration / 1e6
    return round(seconds * float(rate)) if seconds else None


def _encode_all(inp, vin, audio, out, vout, path: tuple[str, FrameFn], batch: int, progress: bool, src: Path,
                dst: Path) -> tuple[int, str | None]:
    """Run the decode -> model -> encoder-thread pipeline; (frames written, why decoding stopped early or None)."""
    import av
    from tqdm import tqdm

    jobs: queue.Queue = queue.Queue(maxsize=2 * batch)
    errors: list = []
    lock = threading.Lock()  # the muxer is shared by the encoder thread and the audio copy
    worker = threading.Thread(target=_encoder, args=(out, vout, path[0], jobs, errors, lock), daemon=True)
    worker.start()
    bar = tqdm(total=vin.frames or None, unit="frame", disable=not progress, desc=src.name)
    result = (0, None)
    try:
        result = _pump(inp, vin, audio, out, path, batch, jobs, bar, errors, lock)
    except av.error.FFmpegError as err:  # muxing audio can meet a failed encoder first
        errors.append(err)
    finally:
        jobs.put(None)
        worker.join()
        bar.close()
    if errors:
        err = errors[0]
        raise UserError(f"{dst}: encoding failed ({getattr(err, 'strerror', None) or err})")
    return result


def _copy_audio_streams(inp, out) -> tuple[dict, list[str]]:
    """Output twins of the input's audio streams; codecs the container cannot hold are listed, not fatal."""
    audio, dropped = {}, []
    for stream in inp.streams.audio:
        try:
            audio[stream] = out.add_stream_from_template(stream)
        except ValueError:
            dropped.append(stream.codec_context.name)
    return audio, dropped


def _open_output(path: Path, dst: Path):
    """The muxer writing to ``path`` in the format ``dst``'s extension names."""
    import av

    try:
        return av.open(str(path), "w", format=_FORMATS.get(dst.suffix.lower()))
    except (av.error.FFmpegError, ValueError) as err:
        raise UserError(f"{dst}: cannot write this video format ({err})") from None


def _pump(inp, vin, audio: dict, out, path: tuple[str, FrameFn], batch: int, jobs: queue.Queue, bar, errors: list,
          lock: threading.Lock) -> tuple[int, str | None]:
    """Demux: video frames (as ``path``'s pixel format) -> batches -> its frame function -> encoder queue; audio
    packets muxed as they come. Returns (frames queued, the decoder's error if it stopped early)."""
    import av

    pix_fmt, frame_fn = path
    pending: list[np.ndarray] = []
    count, decode_error = 0, None

    def flush() -> None:
        nonlocal count
        for pixels in frame_fn(np.stack(pending)):
            jobs.put((count, pixels))
            count += 1
        bar.update(len(pending))
        pending.clear()

    for packet in inp.demux(vin, *audio):
        if errors:
            break
        if packet.stream is vin:
            try:
                frames = packet.decode()
            except av.error.FFmpegError as err:  # a damaged or truncated stream: keep what decoded
                decode_error = f"{type(err).__name__}: {err}"
                break
            for frame in frames:
                pending.append(frame_pixels(frame, pix_fmt))
                if len(pending) == batch:
                    flush()
        elif packet.dts is not None:
            packet.stream = audio[packet.stream]
            with lock:
                out.mux(packet)
    if pending:
        flush()
    return count, decode_error
