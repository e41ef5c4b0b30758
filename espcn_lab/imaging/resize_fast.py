"""A faster, bit-identical execution of ``resize_right``'s weight application for numpy inputs.

``resize_right.apply_weights`` gathers every output pixel's whole field of view into one large
temporary (out, taps, rest), multiplies and sums over taps. This version accumulates tap by tap in
the same order (acc = x0 * w0; acc += x_t * w_t), so every float64 result is the same bit for bit
(tests/test_imaging.py checks this against the original) while temporaries stay in cache: 2-5x
faster for prep's downscaling and evaluation. ``espcn_lab.imaging`` installs it when imported, so
prep, validation and ``eval`` share one implementation. Torch inputs keep the original code path.
"""

from __future__ import annotations

import numpy as np
import resize_right.resize_right as _rr

_ORIGINAL = _rr.apply_weights


def apply_weights_tapwise(input, field_of_view, weights, dim, n_dims, pad_sz, pad_mode, fw):
    """Drop-in for ``resize_right.apply_weights`` (same arguments, same float64 bits for numpy)."""
    if fw is not np:
        return _ORIGINAL(input, field_of_view, weights, dim, n_dims, pad_sz, pad_mode, fw)
    padded = _rr.fw_pad(np.swapaxes(input, dim, 0), fw, pad_sz, pad_mode)
    tap_weights = weights.reshape(*weights.shape, *[1] * (n_dims - 1))
    acc = padded[field_of_view[:, 0]] * tap_weights[:, 0]
    for t in range(1, field_of_view.shape[1]):
        acc += padded[field_of_view[:, t]] * tap_weights[:, t]
    return np.swapaxes(acc, 0, dim)


def install(enabled: bool = True) -> None:
    """Route ``resize_right`` (hence ``imaging.degrade``) through the tap-wise version, or back."""
    _rr.apply_weights = apply_weights_tapwise if enabled else _ORIGINAL
