"""Rigorous error bounds that make the CPU GEMM path exact (``cpu_gemm``).

Two separate bounds instead of one on |GEMM form - direct form|:

- the GEMM form G against the exact distance t = |x - y|^2 of the float rows:
  ``|G_ij - t_ij| <= err_i = gemm_err_coef * (xn_i + ymax) + gemm_err_floor``
  (xn_i, ymax: the computed centred squared norms), an absolute error that
  scales with the norms;
- the direct form D (``csrc/cpu/common.h: sqdist_k``) against t:
  ``|D_ij - t_ij| <= direct_rel * t_ij (+ floor)``, relative to the distance
  itself, so tiny for the near pairs every decision is about.

The old single bound charged the direct form's error at the scale of the
norms and doubled the total (``cpu_gemm.gemm_coef`` = 8 (d + 8) u): this one
is about 4x tighter for a pair far closer than the norms (clustered data).

Decision rule (``window_thresh``): a centre j can tie or beat a candidate b
whose direct value is D_ib only if D_ij <= D_ib, so t_ij <= D_ib / (1 - rel)
(+ floor), so ``G_ij <= D_ib / (1 - rel) + err_i``: the window. Its float64
value is raised by 1e-12 relative (``THRESH_BUMP``, also in
csrc/cpu/kernels.h) to cover its own rounding.
"""
from __future__ import annotations

import numpy as np

THRESH_BUMP = 1e-12


def _u(dtype) -> float:
    return float(np.finfo(dtype).eps) / 2.0  # unit roundoff


def _gamma(n: int, u: float) -> float:
    return n * u / (1.0 - n * u)


def gemm_err_coef(d: int, dtype) -> float:
    """``c`` with ``|G_ij - t_ij| <= c (xn_i + yn_j) + gemm_err_floor(d, dtype)``.

    Higham, *Accuracy and Stability of Numerical Algorithms* 3.1 and 3.5: a
    d-term sum or dot product, in any order, with or without FMA, errs by at
    most gamma_d = d u / (1 - d u) times the sum of the magnitudes. With
    a = fl(x - mu), b = fl(y - mu), E = |a - b|^2, S = |a|^2 + |b|^2:
    - norms xn = fl|a|^2, yn: |xn - |a|^2| + |yn - |b|^2| <= gamma_d S;
    - dot p = fl(a.b), doubled exactly: 2 |p - a.b| <= 2 gamma_d |a||b| <= gamma_d S;
    - s = fl(xn + yn) adds u (1 + gamma_d) S; w = fl(s - 2p) multiplies by
      (1 + u) and adds u E <= 2 u S (E <= 2 S); clamping at 0 (E >= 0) only
      helps. So |G - E| <= ((2 gamma_d + u (1 + gamma_d)) (1 + u) + 2 u) S.
    - centring: |a - a*| <= u |a*| (a* = x - mu exactly), so
      |sqrt E - sqrt t| <= u (|a*| + |b*|) and, with sqrt t <= |a*| + |b*|,
      |E - t| <= u (2 + u) (|a*| + |b*|)^2 <= 2 u (2 + u) S / (1 - u)^2.
    - S <= (xn + yn) / (1 - gamma_d).
    About (2 d + 7) u; the value returned is that expression times (1 + 1e-6).
    """
    u = _u(dtype)
    g = _gamma(d, u)
    c = ((2 * g + u * (1 + g)) * (1 + u) + 2 * u + 2 * u * (2 + u) / (1 - u) ** 2) / (1 - g)
    return c * (1 + 1e-6)


def gemm_err_floor(d: int, dtype) -> float:
    """An absolute term for underflow: each of the ~3 d operations behind a value
    (either form) errs by at most u * tiny beyond its relative bound; 32 (d + 8)
    tiny covers both forms many times over."""
    return 32.0 * (d + 8) * float(np.finfo(dtype).tiny)


def direct_rel(d: int, dtype) -> float:
    """``r`` with ``|D_ij - t_ij| <= r t_ij``: sqdist_k rounds each difference
    and its square, then sums d non-negative terms (lanes, a halving tree: each
    term sees at most d - 1 additions), so every term carries at most d + 2
    roundings: gamma_{d+2} t. Returned: gamma_{d+3} (1 + 1e-6)."""
    return _gamma(d + 3, _u(dtype)) * (1 + 1e-6)


def row_err(xn, ymax: float, d: int, dtype) -> np.ndarray:
    """err_i (float64) for rows with centred norms xn against columns whose largest is ymax."""
    return gemm_err_coef(d, dtype) * (np.asarray(xn, np.float64) + ymax) + gemm_err_floor(d, dtype)


def window_thresh(value, err, rel: float) -> np.ndarray:
    """The window of a candidate with direct value ``value``: every centre that can
    tie or beat it has ``G <= (value / (1 - rel) + err) (1 + THRESH_BUMP)``."""
    return (np.asarray(value, np.float64) / (1.0 - rel) + err) * (1.0 + THRESH_BUMP)


def scan_reach(err, rel: float):
    """(scale, reach) for the top-k scan: it may drop a value above
    ``scale * running best + reach``. Every window of the final candidate b lies
    below that: D_ib <= (1 + rel) t_ib <= (1 + rel) (G_ib + err), so
    window_thresh <= (G_ib + err) s + err (1 + THRESH_BUMP) with s = (1 + rel) / (1 - rel);
    scale and reach are raised by 1e-9 to cover the bump and the float64 roundings."""
    s = (1.0 + rel) / (1.0 - rel)
    return s * (1 + 1e-9), np.asarray(err, np.float64) * (s + 1.0) * (1 + 1e-9)
