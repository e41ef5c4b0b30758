"""Numba kernels for the CPU whole-frame path (``cpu_frame``): the colour work around the network in
two passes, each reading its input once and writing its output once, so together they cost a few
percent of the network.

``prep_rows``: RGB uint8 -> the network's luma input (BT.601 Y rounded to uint8, then / 255) and the
Cb, Cr planes, at LR. ``compose_rows``: the network's ``s*s`` LR phase planes and Cb, Cr -> the
interleaved (H, W, 3) uint8 frame: MATLAB bicubic chroma (vertical 5 taps, then horizontal, symmetric
borders), YCbCr -> RGB, rounding half up, the pixel shuffle and channels-last in one go. The
arithmetic follows ``Upscaler.pipeline`` step by step in float32 (its order, its constants); only
fused multiply-adds and summation order may differ, i.e. one grey level on rare rounding ties.

Both work on a range of ``(frame, LR row)`` rows so that threads can split a batch between them; they
release the GIL. Compiled on first use and cached on disk (``cache=True``).
"""

from __future__ import annotations

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
def _vertical(planes, b, i, t, v):
    """v[2:w+2] = the 5-tap vertical filter ``t`` of ``planes[b]`` around row i; v[0:2], v[w+2:] symmetric."""
    h, w = planes.shape[1], planes.shape[2]
    p0, p1, p2 = planes[b, _sym(i - 2, h)], planes[b, _sym(i - 1, h)], planes[b, i]
    p3, p4 = planes[b, _sym(i + 1, h)], planes[b, _sym(i + 2, h)]
    t0, t1, t2, t3, t4 = t[0], t[1], t[2], t[3], t[4]
    for j in range(w):
        v[j + 2] = t0 * p0[j] + t1 * p1[j] + t2 * p2[j] + t3 * p3[j] + t4 * p4[j]
    v[0], v[1] = v[2 + min(1, w - 1)], v[2]
    v[w + 2], v[w + 3] = v[w + 1], v[2 + max(w - 2, 0)]


@nb.njit(nogil=True, cache=True)
def _colour_row(lum, vb, vr, u, k, pr, pg, pb):
    """One output phase of one HR row: horizontal taps ``u`` on the vertical Cb/Cr rows, plus luma, rounded.

    ``k`` = (luma gain, Cr->R, Cb->G, Cr->G, Cb->B, Y offset, Cb offset, Cr offset), as ``ycbcr_to_rgb_t``.
    """
    u0, u1, u2, u3, u4 = u[0], u[1], u[2], u[3], u[4]
    gain, a_r, b_g, c_g, d_b, oy, ob, orr = k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7]
    for j in range(lum.shape[0]):
        xb = u0 * vb[j] + u1 * vb[j + 1] + u2 * vb[j + 2] + u3 * vb[j + 3] + u4 * vb[j + 4] - ob
        xr = u0 * vr[j] + u1 * vr[j + 1] + u2 * vr[j + 2] + u3 * vr[j + 3] + u4 * vr[j + 4] - orr
        luma = (min(max(lum[j], _F0), _F1) * _TOP - oy) * gain
        pr[j] = np.uint8(min(max(luma + a_r * xr + _HALF, _F0), _TOP))
        pg[j] = np.uint8(min(max(luma + b_g * xb + c_g * xr + _HALF, _F0), _TOP))
        pb[j] = np.uint8(min(max(luma + d_b * xb + _HALF, _F0), _TOP))


@nb.njit(nogil=True, cache=True)
def _interleave(planar, row, n):
    """(n, w) planes -> row[j*n + q] = planar[q, j], any n."""
    for j in range(planar.shape[1]):
        for q in range(n):
            row[j * n + q] = planar[q, j]


# The same with n fixed at 6, 9, 12 (x2, x3, x4): the loop over q unrolls, x2's vectorises (2-20x faster).
@nb.njit(nogil=True, cache=True)
def _interleave6(planar, row):
    for j in range(planar.shape[1]):
        for q in range(6):
            row[j * 6 + q] = planar[q, j]


@nb.njit(nogil=True, cache=True)
def _interleave9(planar, row):
    for j in range(planar.shape[1]):
        for q in range(9):
            row[j * 9 + q] = planar[q, j]


@nb.njit(nogil=True, cache=True)
def _interleave12(planar, row):
    for j in range(planar.shape[1]):
        for q in range(12):
            row[j * 12 + q] = planar[q, j]


@nb.njit(nogil=True, cache=True)
def compose_rows(lum, cb, cr, taps, k, out, r0, r1):
    """lum (B, s*s, h, w) raw network phases, cb/cr (B, h, w) -> out (B, h*s, w*s*3) uint8, LR rows r0..r1 of B*h."""
    s, h, w = taps.shape[0], cb.shape[1], cb.shape[2]
    n = 3 * s
    vb, vr = np.empty(w + 4, np.float32), np.empty(w + 4, np.float32)
    planar = np.empty((n, w), np.uint8)
    for r in range(r0, r1):
        b, i = r // h, r % h
        for py in range(s):
            _vertical(cb, b, i, taps[py], vb)
            _vertical(cr, b, i, taps[py], vr)
            for px in range(s):
                _colour_row(lum[b, py * s + px, i], vb, vr, taps[px], k,
                            planar[3 * px], planar[3 * px + 1], planar[3 * px + 2])
            row = out[b, i * s + py]  # (px, colour) planes -> interleaved pixels: shuffle and NHWC at once
            if n == 6:
                _interleave6(planar, row)
            elif n == 9:
                _interleave9(planar, row)
            elif n == 12:
                _interleave12(planar, row)
            else:
                _interleave(planar, row, n)
