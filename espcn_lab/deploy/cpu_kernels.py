"""Numba kernels for the CPU whole-frame path (``cpu_frame``): the colour work around the network in
two passes, each reading its input once and writing its output once, so together they cost a few
percent of the network.

``prep_rows``: RGB uint8 -> the network's luma input (BT.601 Y rounded to uint8, then / 255) and the
Cb, Cr planes, at LR. ``compose_kernel(s)``: the network's ``s*s`` LR phase planes and Cb, Cr -> the
interleaved (H, W, 3) uint8 frame: MATLAB bicubic chroma (vertical 5 taps, then horizontal, symmetric
borders), YCbCr -> RGB, rounding half up, the pixel shuffle and channels-last in one go. The
arithmetic follows ``Upscaler.pipeline`` step by step in float32 (its order, its constants); only
fused multiply-adds and summation order may differ, i.e. one grey level on rare rounding ties.

For video with no RGB anywhere (``CpuFrameRunner.yuv420p``): ``luma_rows`` takes a yuv420p frame's Y
plane as the network's input, and ``yuv420p_kernel(s)`` writes the HR yuv420p frame: the HR Y plane
(the network's output rounded, pixel-shuffled) and U, V by the same MATLAB bicubic at chroma size.

All of them work on a range of ``(frame, LR row)`` rows so that threads can split a batch between them; they
release the GIL. Compiled on first use and cached on disk (``cache=True``; a few seconds once per scale).
"""

from __future__ import annotations

import functools

import numba as nb
import numpy as np

_F0, _F1, _HALF, _TOP = np.float32(0.0), np.float32(1.0), np.float32(0.5), np.float32(255.0)


@nb.njit(nogil=True, cache=True, inline="always")
def _sym(i, n):
    """MATLAB's symmetric border index (as ``ops.symmetric_index``)."""
    if i < 0:
        i = -i - 1
    if i >= n:
        i = 2 * n - 1 - i
    return min(max(i, 0), n - 1)


@nb.njit(nogil=True, cache=True)
def prep_rows(rgb, m, off, y, cb, cr, r0, r1):
    """rgb (B, h, w, 3) uint8 -> y (B, 1, h, w) = round(Y) / 255, cb and cr (B, h, w), for rows r0..r1 of B*h."""
    h, w = rgb.shape[1], rgb.shape[2]
    for r in range(r0, r1):
        b, i = r // h, r % h
        src, yo, bo, ro = rgb[b, i].reshape(-1), y[b, 0, i], cb[b, i], cr[b, i]  # 1-D: stride 3 is a constant
        for j in range(w):
            red, green, blue = np.float32(src[3 * j]), np.float32(src[3 * j + 1]), np.float32(src[3 * j + 2])
            luma = m[0, 0] * red + m[0, 1] * green + m[0, 2] * blue + off[0]
            yo[j] = min(max(np.floor(luma + _HALF), _F0), _TOP) / _TOP
            bo[j] = m[1, 0] * red + m[1, 1] * green + m[1, 2] * blue + off[1]
            ro[j] = m[2, 0] * red + m[2, 1] * green + m[2, 2] * blue + off[2]


@nb.njit(nogil=True, cache=True, inline="always")
def _taps5(p0, p1, p2, p3, p4, t, v):
    """v[2:w+2] = the 5-tap filter ``t`` over rows p0..p4 (w samples each); v[0:2], v[w+2:] symmetric."""
    w = p2.shape[0]
    t0, t1, t2, t3, t4 = t[0], t[1], t[2], t[3], t[4]
    for j in range(w):
        v[j + 2] = t0 * p0[j] + t1 * p1[j] + t2 * p2[j] + t3 * p3[j] + t4 * p4[j]
    v[0], v[1] = v[2 + min(1, w - 1)], v[2]
    v[w + 2], v[w + 3] = v[w + 1], v[2 + max(w - 2, 0)]


@nb.njit(nogil=True, cache=True, inline="always")
def _vertical(planes, b, i, t, v):
    """v[2:w+2] = the 5-tap vertical filter ``t`` of ``planes[b]`` around row i; v[0:2], v[w+2:] symmetric."""
    h = planes.shape[1]
    _taps5(planes[b, _sym(i - 2, h)], planes[b, _sym(i - 1, h)], planes[b, i], planes[b, _sym(i + 1, h)],
           planes[b, _sym(i + 2, h)], t, v)


@nb.njit(nogil=True, cache=True)
def _colour_hr(lum, vb, vr, u, step, k, row):
    """One HR row in HR pixel order: horizontal chroma taps, luma, YCbCr -> RGB, rounding, interleaved RGB out.

    ``lum``, ``u[q]`` (the tap of each pixel's phase) and the spread chroma rows ``vb``/``vr`` are
    indexed by HR pixel x; tap q of pixel x reads ``v[x + q*step]`` (step = the scale). ``k`` = (luma
    gain, Cr->R, Cb->G, Cr->G, Cb->B, Y offset, Cb offset, Cr offset), as ``ycbcr_to_rgb_t``.
    """
    gain, a_r, b_g, c_g, d_b, oy, ob, orr = k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]
    u0, u1, u2, u3, u4 = u[0], u[1], u[2], u[3], u[4]
    s1, s2, s3, s4 = step, 2 * step, 3 * step, 4 * step
    for x in range(lum.shape[0]):
        xb = u0[x] * vb[x] + u1[x] * vb[x + s1] + u2[x] * vb[x + s2] + u3[x] * vb[x + s3] + u4[x] * vb[x + s4] - ob
        xr = u0[x] * vr[x] + u1[x] * vr[x + s1] + u2[x] * vr[x + s2] + u3[x] * vr[x + s3] + u4[x] * vr[x + s4] - orr
        luma = (min(max(lum[x], _F0), _F1) * _TOP - oy) * gain
        row[3 * x] = np.uint8(min(max(luma + a_r * xr + _HALF, _F0), _TOP))
        row[3 * x + 1] = np.uint8(min(max(luma + b_g * xb + c_g * xr + _HALF, _F0), _TOP))
        row[3 * x + 2] = np.uint8(min(max(luma + d_b * xb + _HALF, _F0), _TOP))


@functools.lru_cache(maxsize=None)
def compose_kernel(scale: int):
    """``compose(lum, cb, cr, taps, k, out, r0, r1)`` for ``scale``: lum (B, s*s, h, w) raw network phases,
    cb/cr (B, h, w) -> out (B, h*s, w*s*3) uint8, for LR rows r0..r1 of B*h.

    The scale is a compile-time constant here (numba caches one build per value), so the two steps
    that reorder LR phases into HR pixel order are fixed-stride loops the compiler vectorises; all
    the arithmetic then runs over HR pixels and writes each output row once, in order.
    """
    s = int(scale)  # the only captured value: numba's disk cache keys the build by it

    @nb.njit(nogil=True, cache=True)
    def compose(lum, cb, cr, taps, k, out, r0, r1):
        h, w = cb.shape[1], cb.shape[2]
        u = np.empty((5, w * s), np.float32)
        for x in range(w * s):
            for q in range(5):
                u[q, x] = taps[x % s, q]
        vb, vr = np.empty(w + 4, np.float32), np.empty(w + 4, np.float32)
        sb, sr = np.empty((w + 4) * s, np.float32), np.empty((w + 4) * s, np.float32)
        luma = np.empty(w * s, np.float32)
        for r in range(r0, r1):
            b, i = r // h, r % h
            for py in range(s):
                _vertical(cb, b, i, taps[py], vb)
                _vertical(cr, b, i, taps[py], vr)
                for j in range(w + 4):  # each LR chroma sample under its s HR pixels
                    for p in range(s):
                        sb[j * s + p] = vb[j]
                        sr[j * s + p] = vr[j]
                for j in range(w):  # phase (py, px) of LR pixel (i, j) -> HR pixel j*s + px: the shuffle
                    for px in range(s):
                        luma[j * s + px] = lum[b, py * s + px, i, j]
                _colour_hr(luma, sb, sr, u, s, k, out[b, i * s + py])

    return compose


@nb.njit(nogil=True, cache=True)
def luma_rows(src, y, r0, r1):
    """src (B, h*3/2, w) uint8 yuv420p frames (its first h rows are the Y plane) -> y (B, 1, h, w) = Y / 255,
    for rows r0..r1 of B*h. A limited-range BT.601 Y plane is the network's input itself (MATLAB's Y)."""
    h = y.shape[2]
    for r in range(r0, r1):
        b, i = r // h, r % h
        row, yo = src[b, i], y[b, 0, i]
        for j in range(yo.shape[0]):
            yo[j] = np.float32(row[j]) / _TOP


@nb.njit(nogil=True, cache=True, inline="always")
def _plane_row(flat, off, rows, width, i):
    """Row ``i`` (symmetric beyond the edges) of the ``rows`` x ``width`` plane stored at ``flat[off:]``."""
    start = off + _sym(i, rows) * width
    return flat[start:start + width]


@nb.njit(nogil=True, cache=True, inline="always")
def _chroma_hr(spread, u, step, row):
    """One HR chroma row: the horizontal taps over the spread vertical result, rounded half up, clamped, uint8."""
    u0, u1, u2, u3, u4 = u[0], u[1], u[2], u[3], u[4]
    s1, s2, s3, s4 = step, 2 * step, 3 * step, 4 * step
    for x in range(row.shape[0]):
        c = u0[x] * spread[x] + u1[x] * spread[x + s1] + u2[x] * spread[x + s2] + u3[x] * spread[x + s3] \
            + u4[x] * spread[x + s4]
        row[x] = np.uint8(min(max(c + _HALF, _F0), _TOP))


@functools.lru_cache(maxsize=None)
def yuv420p_kernel(scale: int):
    """``compose(lum, src, taps, out, r0, r1)`` for ``scale``: lum (B, s*s, h, w) raw network phases and the
    LR frames src (B, h*3/2, w) uint8 yuv420p -> out (B, h*s*3/2, w*s) uint8 yuv420p, for LR rows r0..r1 of B*h.

    The HR Y plane is the network's output clamped to [0, 1], times 255, rounded half up, written in HR pixel
    order (the pixel shuffle); each even LR row also makes its chroma row's ``s`` HR rows of U and V by
    MATLAB bicubic (5 taps vertically, then horizontally, symmetric borders), rounded the same way. Frames
    in and out are PyAV's ``yuv420p`` ndarray layout: Y, then U, then V, each plane's rows back to back.
    """
    s = int(scale)  # the only captured value: numba's disk cache keys the build by it

    @nb.njit(nogil=True, cache=True)
    def compose(lum, src, taps, out, r0, r1):
        h, w = lum.shape[2], lum.shape[3]
        hc, wc, big_w = h // 2, w // 2, w * s
        u = np.empty((5, wc * s), np.float32)
        for x in range(wc * s):
            for q in range(5):
                u[q, x] = taps[x % s, q]
        v = np.empty(wc + 4, np.float32)
        spread = np.empty((wc + 4) * s, np.float32)
        for r in range(r0, r1):
            b, i = r // h, r % h
            flat, dst = src[b].reshape(-1), out[b].reshape(-1)
            for py in range(s):  # phase (py, px) of LR pixel (i, j) -> HR pixel (i*s + py, j*s + px)
                row = dst[(i * s + py) * big_w:(i * s + py + 1) * big_w]
                for j in range(w):
                    for px in range(s):
                        row[j * s + px] = np.uint8(min(max(lum[b, py * s + px, i, j], _F0), _F1) * _TOP + _HALF)
            if i % 2:
                continue
            ic = i // 2
            for plane in range(2):  # U, then V
                off, off_hr = h * w + plane * hc * wc, h * w * s * s + plane * hc * wc * s * s
                for py in range(s):
                    _taps5(_plane_row(flat, off, hc, wc, ic - 2), _plane_row(flat, off, hc, wc, ic - 1),
                           _plane_row(flat, off, hc, wc, ic), _plane_row(flat, off, hc, wc, ic + 1),
                           _plane_row(flat, off, hc, wc, ic + 2), taps[py], v)
                    for j in range(wc + 4):  # each LR chroma sample under its s HR samples
                        for p in range(s):
                            spread[j * s + p] = v[j]
                    start = off_hr + (ic * s + py) * wc * s
                    _chroma_hr(spread, u, s, dst[start:start + wc * s])

    return compose
