"""GPU benchmarks of the triton backend, each checked before it is timed.

    python benchmarks/bench_gpu.py            # full sizes, on a CUDA device
    TRITON_INTERPRET=1 python benchmarks/bench_gpu.py --tiny   # the logic, on CPU

Rows: step bandwidth (N x d bf16) against a measured device-to-device copy;
h_min (fp16) against a blocked torch.mm + min baseline and FAISS GPU if
importable; exact lazy FPS (bf16) against the streaming estimate; batched
point clouds against torch-fps if importable; a pure-PyTorch streaming loop.
Prints a table last; writes JSON to $OUT/bench_gpu.json when OUT is set.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch

import hminsel
from hminsel.backends import get
from hminsel.triton.batched import fps_batched
from hminsel.triton.step import launch_steps

FULL = dict(step=(1 << 20, 1024), persistent=(20_000, 768, 10_000), hmin=(1 << 20, 768),
            lazy=(1 << 20, 1024, 100_000), batched=(256, 4096, 3, 512),
            torch_loop=(1 << 20, 1024, 20))
TINY = dict(step=(300, 40), persistent=(300, 48, 60), hmin=(200, 24), lazy=(300, 16, 30),
            batched=(3, 64, 3, 16), torch_loop=(300, 16, 5))
DEV = "cuda" if torch.cuda.is_available() else "cpu"


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def bench(fn, repeat=5, warmup=1):
    """(median s, min s, max s) of ``fn`` with device syncs around each run."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times)


def data(n, d, dtype, seed=0):
    g = torch.Generator(device=DEV).manual_seed(seed)
    return torch.randn(n, d, generator=g, device=DEV, dtype=torch.float32).to(dtype)


def row(rows, name, seconds, note, **extra):
    rows.append(dict(name=name, median_s=seconds[0], min_s=seconds[1], max_s=seconds[2], note=note, **extra))
    print(f"  {name}: {1e3 * seconds[0]:.3f} ms  {note}", flush=True)  # survives a timeout


def run_step(rows, n, d, repeat):
    x = data(n, d, torch.bfloat16)
    src = torch.empty(n * d, dtype=torch.bfloat16, device=DEV)
    dst = torch.empty_like(src)
    copy = bench(lambda: dst.copy_(src), repeat)
    copy_gbs = 2 * src.numel() * 2 / copy[0] / 1e9  # read + write
    mind = torch.full((n,), float("inf"), device=DEV)
    picks, _ = get("triton").steps(x, mind, 0, 3)  # checked before timed
    ref = hminsel.select(x[:, :].float().cpu().numpy(), 4, backend="cpu", algorithm="streaming")
    assert picks.tolist() == ref.indices[1:].tolist(), "step picks differ from the cpu backend"
    steps = 20 if n > 10_000 else 3
    t = bench(lambda: launch_steps(x, mind.fill_(float("inf")), 0, steps), repeat)
    per = (t[0] / steps, t[1] / steps, t[2] / steps)
    gbs = n * d * 2 / per[0] / 1e9
    row(rows, f"step {n}x{d} bf16", per, f"{gbs:.0f} GB/s = {100 * gbs / copy_gbs:.0f}% of copy "
        f"({copy_gbs:.0f} GB/s)", gbs=gbs, copy_gbs=copy_gbs)
    if hminsel.backends.why_not("cuda") is None:  # the persistent kernel in streaming mode
        from hminsel.cuda.kernels import steps as cuda_steps
        picks_c, _ = cuda_steps(x, mind.fill_(float("inf")), 0, 3)
        agree = picks_c.tolist() == picks.tolist()
        t = bench(lambda: cuda_steps(x, mind.fill_(float("inf")), 0, steps), repeat)
        per_c = (t[0] / steps, t[1] / steps, t[2] / steps)
        gbs_c = n * d * 2 / per_c[0] / 1e9
        row(rows, f"step {n}x{d} bf16 cuda persistent", per_c,
            f"{gbs_c:.0f} GB/s = {100 * gbs_c / copy_gbs:.0f}% of copy; {per_c[0] / per[0]:.2f}x "
            f"triton's time; picks {'agree' if agree else 'DIFFER'}", gbs=gbs_c)


def run_persistent(rows, n, d, k, repeat):
    """The published pool size: N x d fp16 fits on chip; CUDA persistent vs triton streaming."""
    x = data(n, d, torch.float16, seed=5)
    triton = lambda: hminsel.select(x, k, backend="triton", algorithm="streaming")  # noqa: E731
    ref = triton()
    assert_certified(x, ref.indices[:200])
    t_tr = bench(triton, max(1, repeat // 2))
    row(rows, f"select {n}x{d} fp16 k={k} triton streaming", t_tr, "one launch a step")
    if hminsel.backends.why_not("cuda") is not None:
        row(rows, "select cuda persistent", (float("nan"),) * 3,
            f"skipped: {hminsel.backends.why_not('cuda')}")
        return
    cuda = lambda: hminsel.select(x, k, backend="cuda", algorithm="streaming")  # noqa: E731
    sel = cuda()
    assert_certified(x, sel.indices[:200])
    same = int((sel.indices.cpu() == ref.indices.cpu()).cumprod(0).sum())
    t = bench(cuda, repeat)
    row(rows, f"select {n}x{d} fp16 k={k} cuda persistent", t,
        f"{t_tr[0] / t[0]:.1f}x triton; same picks as triton for the first {same}", speedup=t_tr[0] / t[0])


def assert_certified(x, picks, rtol=1e-3):
    """The greedy certificate in float64 on the host for a prefix of the picks."""
    xs = x.float().cpu().numpy().astype(np.float64)
    mind = np.full(len(xs), np.inf)
    picks = picks.cpu().numpy()
    for t, p in enumerate(picks):
        if t:
            assert mind[p] >= mind.max() * (1 - rtol), f"pick {t} is not the farthest point"
        mind = np.minimum(mind, ((xs - xs[p]) ** 2).sum(1))
        mind[picks[: t + 1]] = -1


def run_hmin(rows, n, d, repeat):
    x = data(n, d, torch.float16, seed=1)
    res = hminsel.hmin(x, backend="triton")
    t = bench(lambda: hminsel.hmin(x, backend="triton"), max(1, repeat // 2))
    row(rows, f"hmin {n}x{d} fp16 triton", t, f"pair ({res.i}, {res.j}) = {res.value:.4g}")

    def blocked():  # torch.mm in fp16 tiles + min: the GEMM-form baseline (no re-check)
        norms = (x.float() ** 2).sum(1)
        best = torch.full((n,), float("inf"), device=DEV)
        for lo in range(0, n, 8192):
            g = norms[lo:lo + 8192, None] + norms[None, :] - 2 * (x[lo:lo + 8192] @ x.T).float()
            g[torch.arange(len(g)), torch.arange(lo, lo + len(g))] = float("inf")
            best[lo:lo + 8192] = g.min(1).values
        return best.min()
    base = blocked()
    assert float(base.clamp_min(0).sqrt()) <= res.value * 1.01 + 1e-3, "baseline disagrees"
    row(rows, "hmin blocked torch.mm+min", bench(blocked, max(1, repeat // 2)), "GEMM form, unchecked")
    try:
        import faiss
        res_f = faiss.StandardGpuResources()
        xf = x.float().cpu().numpy()
        index = faiss.GpuIndexFlatL2(res_f, d)
        index.add(xf)
        row(rows, "hmin FAISS GPU flat k=2", bench(lambda: index.search(xf, 2), 1, 0), "incl. host copy")
    except Exception as exc:  # not installed, or no GPU build
        row(rows, "hmin FAISS GPU flat k=2", (float("nan"),) * 3, f"skipped: {type(exc).__name__}")


def run_lazy(rows, n, d, k, repeat):
    x = data(n, d, torch.bfloat16, seed=2)
    sel = hminsel.select(x, k, backend="triton", algorithm="lazy")
    t = bench(lambda: hminsel.select(x, k, backend="triton", algorithm="lazy"), 1, 0)
    head = min(k, 50)
    ref = hminsel.select(x, head, backend="triton", algorithm="streaming")
    assert sel.indices[:head].tolist() == ref.indices.tolist(), "lazy != streaming"
    row(rows, f"lazy FPS k={k} of {n}x{d} bf16", t,
        f"{sel.stats.rounds} rounds, {sel.stats.passes:.0f} passes", rounds=sel.stats.rounds)
    if hminsel.backends.why_not("cuda") is None:  # the head loop as one persistent launch a round
        sel_c = hminsel.select(x, k, backend="cuda", algorithm="lazy")
        t_c = bench(lambda: hminsel.select(x, k, backend="cuda", algorithm="lazy"), 1, 0)
        assert_certified(x, sel_c.indices[:head])
        row(rows, f"lazy FPS k={k} of {n}x{d} bf16 cuda", t_c,
            f"{sel_c.stats.rounds} rounds, {sel_c.stats.passes:.0f} passes", rounds=sel_c.stats.rounds)


def run_batched(rows, b, n, d, k, repeat):
    x = data(b * n, d, torch.float32, seed=3)
    ptr = torch.arange(0, b * n + 1, n, device=DEV)
    idx, _ = fps_batched(x, ptr, k)
    want = hminsel.select(x[:n].cpu().numpy(), k, backend="cpu", algorithm="streaming").indices
    assert idx[0].tolist() == want.tolist(), "batched differs from select on problem 0"
    row(rows, f"batched B={b} N={n} d={d} k={k}", bench(lambda: fps_batched(x, ptr, k), repeat), "one program a cloud")
    try:
        import torch_fps
        xb = x.view(b, n, d)
        valid = torch.ones(b, n, dtype=torch.bool, device=DEV)
        start = torch.zeros(b, dtype=torch.long, device=DEV)
        run = lambda: torch_fps.farthest_point_sampling(xb, valid, k, start_idx=start,  # noqa: E731
                                                         random_start=False)
        row(rows, "batched torch-fps", bench(run, repeat), "peer")
    except Exception as exc:
        row(rows, "batched torch-fps", (float("nan"),) * 3, f"skipped: {type(exc).__name__}")


def run_torch_loop(rows, n, d, steps, repeat):
    x = data(n, d, torch.bfloat16, seed=4)

    def loop():  # the plain PyTorch streaming FPS users write: k small kernels a step
        mind = torch.full((n,), float("inf"), device=DEV)
        c = 0
        for _ in range(steps):
            mind = torch.minimum(mind, ((x.float() - x[c].float()) ** 2).sum(1))
            c = int(torch.argmax(mind))
        return c
    t = bench(loop, max(1, repeat // 2))
    row(rows, f"pure-PyTorch streaming {n}x{d} bf16 (per step)", tuple(v / steps for v in t), "peer")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", "--dry-run", action="store_true", help="tiny sizes (CPU interpreter)")
    ap.add_argument("--only", nargs="*", default=list(FULL), choices=list(FULL))
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)
    sizes = TINY if args.tiny else FULL
    print(f"bench_gpu: {', '.join(args.only)} ({'tiny' if args.tiny else 'full'} sizes)", flush=True)
    repeat = 1 if args.tiny else args.repeat
    rows = []
    for name in args.only:
        try:
            globals()[f"run_{name}"](rows, *sizes[name], repeat)
        except torch.cuda.OutOfMemoryError as exc:  # recorded, not a crash
            row(rows, name, (float("nan"),) * 3, f"out of memory: {str(exc)[:80]}")
    meta = dict(device=torch.cuda.get_device_name() if DEV == "cuda" else "cpu (interpreter)",
                torch=torch.__version__, hminsel=hminsel.__version__, tiny=args.tiny)
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "bench_gpu.json"), "w") as f:
            json.dump(dict(meta=meta, rows=rows), f, indent=1)
    print(f"\n{meta['device']}  torch {meta['torch']}  hminsel {meta['hminsel']}")
    print(f"{'benchmark':46s} {'median ms':>10s} {'min..max ms':>17s}  note")
    for r in rows:
        print(f"{r['name']:46s} {1e3 * r['median_s']:10.3f} {1e3 * r['min_s']:8.2f}..{1e3 * r['max_s']:<8.2f}  {r['note']}")


if __name__ == "__main__":
    main()
