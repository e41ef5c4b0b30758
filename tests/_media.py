"""Writing real test videos: RGB frames encoded by PyAV in a chosen codec and pixel format, optionally with audio."""

from __future__ import annotations

import numpy as np


def write_clip(path, frames, pix_fmt="yuv420p", codec="ffv1", rate=25, audio=False, color_range=None):
    """Encode RGB ``frames`` (a list of (h, w, 3) uint8) as ``pix_fmt`` (PyAV converts), optionally with AAC."""
    import av

    with av.open(str(path), "w") as out:
        video = out.add_stream(codec, rate=rate)
        video.height, video.width = frames[0].shape[:2]
        video.pix_fmt = pix_fmt
        if color_range is not None:
            video.codec_context.color_range = color_range
        sound = out.add_stream("aac", rate=16000) if audio else None
        if sound:
            sound.layout = "mono"
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        if sound:
            for k in range(6):
                chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
                chunk.sample_rate, chunk.pts = 16000, k * 1024
                out.mux(sound.encode(chunk))
            out.mux(sound.encode(None))
    return path
