"""Tiny calls of every GPU kernel, each checked against the numpy backend: the program that
``gpu_check.sh`` runs under compute-sanitizer (memcheck: out-of-bounds and misaligned
accesses; racecheck: shared-memory hazards of the persistent kernel), which the Triton
interpreter and the CUDA emulator cannot find.

    compute-sanitizer --tool memcheck --error-exitcode 3 python3 benchmarks/gpu_sanitize.py
    python3 benchmarks/gpu_sanitize.py --backend cuda --select-only   # racecheck: the
        # persistent kernel's select calls only (racecheck is slow: all of it ran past 30 s)
    TRITON_INTERPRET=1 python3 benchmarks/gpu_sanitize.py --cpu   # the dry run: CPU tensors

The cases reach the kernels' edges: d = 33 (no 16-byte loads) and 64 (16-byte loads),
float32/float16/bfloat16, a streaming run of 9 steps in one cooperative launch with rows
in shared memory (``res`` > 0; the CUDA kernel in its modes 0 and 3), a lazy head loop (the gated run with global indices),
``nearest`` (block_min) and ``hmin`` (the pair kernel). Exit 1 on a wrong answer.
"""
from __future__ import annotations

import argparse
import sys
import time

import numpy as np

sys.path.insert(0, ".")  # the checkout's hminsel (the device's tree is not installed as a wheel)
import hminsel  # noqa: E402
from hminsel import backends  # noqa: E402

DTYPES = ("float32", "float16", "bfloat16")


def cases(cpu: bool, few: bool = False):
    """``(label, x (n, d) float64 host rows, dtype)``: tie-free random rows, small (``few``:
    float32 and float16 only)."""
    n = 300 if cpu else 3000
    for d in (33, 64):
        rows = np.random.default_rng(d).standard_normal((n, d))
        for dtype in DTYPES[:1] if cpu else DTYPES[:2] if few else DTYPES:
            yield f"n={n} d={d} {dtype}", rows, dtype


# the CUDA persistent kernel's modes (hminsel/cuda/kernels.py: FPS_MODE): 0, and 3 (the key by
# an exchange of flagged slots, the min-distances in shared memory), untimed before 2026-12-04
MODES = {"triton": (0,), "cuda": (0, 3)}


def select(t, k, backend, algorithm, mode):
    """``hminsel.select`` with the CUDA kernel's ``mode``."""
    if backend != "cuda":
        return hminsel.select(t, k, backend=backend, algorithm=algorithm)
    from hminsel.cuda import kernels
    with kernels.fps_mode(mode):
        return hminsel.select(t, k, backend=backend, algorithm=algorithm)


def check(backend: str, device: str, cpu: bool, select_only: bool = False) -> list[str]:
    """The failures (empty: every call agreed with the numpy backend)."""
    import torch
    bad = []
    for label, rows, dtype in cases(cpu, few=select_only):
        t = torch.from_numpy(rows).to(device=device, dtype=getattr(torch, dtype)).contiguous()
        host = t.float().cpu().numpy()  # the values the GPU reads
        for algorithm, mode in [(a, m) for a in ("streaming", "lazy") for m in MODES[backend]]:
            got = select(t, 9 if algorithm == "streaming" else 60, backend, algorithm, mode)
            want = hminsel.select(host, len(got.indices), backend="numpy")
            if got.indices.cpu().tolist() != want.indices.tolist():
                bad.append(f"{backend} {algorithm} mode {mode} {label}: picks differ from numpy's")
        if select_only:
            continue
        dist, idx = hminsel.nearest(t, t[::7], backend=backend)
        want_d, want_i = hminsel.nearest(host, host[::7], backend="numpy")
        if idx.cpu().tolist() != want_i.tolist() or not np.allclose(dist.cpu().numpy(), want_d,
                                                                    rtol=1e-3, atol=1e-3):
            bad.append(f"{backend} nearest {label}: differs from numpy's")
        res = hminsel.hmin(t, backend=backend)
        ref = hminsel.hmin(host, backend="numpy")
        if (res.i, res.j) != (ref.i, ref.j):
            bad.append(f"{backend} hmin {label}: pair {(res.i, res.j)}, numpy {(ref.i, ref.j)}")
    if device == "cuda":
        torch.cuda.synchronize()  # a kernel's fault reported here, not at exit
    return bad


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=("triton", "cuda"), action="append",
                    help="backends to run (default: both; repeat for more than one)")
    ap.add_argument("--cpu", action="store_true",
                    help="CPU tensors at smaller sizes (TRITON_INTERPRET=1; the dry run)")
    ap.add_argument("--select-only", action="store_true",
                    help="select's calls only (streaming, lazy), float32 and float16: racecheck")
    args = ap.parse_args(argv)
    device = "cpu" if args.cpu else "cuda"
    failures = []
    for backend in args.backend or ["triton", "cuda"]:
        reason = backends.why_not(backend)
        if reason is not None and device == "cuda":
            print(f"{backend}: unavailable ({reason})")
            failures.append(f"{backend}: unavailable")
            continue
        if backend == "cuda" and device == "cpu":
            print("cuda: skipped on CPU tensors (its kernels need a GPU)")
            continue
        t0 = time.perf_counter()
        bad = check(backend, device, args.cpu, args.select_only)
        print(f"{backend}: {'ok' if not bad else 'FAILED'} ({time.perf_counter() - t0:.1f} s)")
        failures += bad
    for line in failures:
        print("  " + line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
