"""The peers hminsel is measured against, each behind an import that may fail.

A peer that is not installed becomes a skip note, never an error. FPS peers
take a float32 (N, d) NumPy array and k and return k indices starting at row 0
(fpsample's bucket FPS chooses its own start; the gate re-anchors on it).
``--device cuda`` runs the torch peers on GPU tensors (synchronised).
"""
from __future__ import annotations

import importlib
import os

import numpy as np

DEVICE = "cpu"


def _import(name: str):
    """(module or None, skip note)."""
    try:
        return importlib.import_module(name), ""
    except Exception as exc:  # noqa: BLE001 - ImportError, or a broken build
        return None, f"{name} not installed here ({type(exc).__name__}: {str(exc)[:80]})"


def _sync():
    if DEVICE != "cpu":
        import torch
        torch.cuda.synchronize()


def numpy_loop(x, k):
    """The loop users write by hand: one full NumPy pass per pick (direct form)."""
    mind = np.full(len(x), np.inf, np.float32)
    picks = [0]
    for _ in range(k - 1):
        diff = x - x[picks[-1]]
        np.minimum(mind, np.einsum("ij,ij->i", diff, diff), out=mind)
        mind[picks[-1]] = -1
        picks.append(int(np.argmax(mind)))
    return np.asarray(picks)


def _torch(x):
    import torch
    torch.set_num_threads(os.cpu_count() or 1)
    return torch.as_tensor(x).to(DEVICE)


def torch_loop(x, k):
    """Pure-PyTorch streaming FPS, direct form, one pass per pick."""
    import torch
    xt = _torch(x)
    mind = torch.full((len(xt),), float("inf"), device=xt.device)
    picks = torch.zeros(k, dtype=torch.long, device=xt.device)
    for t in range(1, k):
        dist = ((xt - xt[picks[t - 1]]) ** 2).sum(1)
        torch.minimum(mind, dist, out=mind)
        mind[picks[t - 1]] = -1
        picks[t] = torch.argmax(mind)
    _sync()
    return picks.cpu().numpy()


def fps_peers(d: int, dtype=np.float32) -> tuple[dict, list[str]]:
    """({name: (fn(x, k) -> indices, extra memory in units of x.nbytes)}, skip notes)."""
    notes, out = [], {}
    if np.dtype(dtype) != np.float32:
        return {}, [f"{np.dtype(dtype).name} input: hminsel only (the peers take float32)"]
    if DEVICE == "cpu":
        out["numpy loop"] = (numpy_loop, 2.0)
    torch, why = _import("torch")
    if torch is None:
        notes.append(f"pure-PyTorch loop, torch-fps, torch-quickfps skipped: {why}")
    else:
        out["torch loop"] = (torch_loop, 2.0)
        tfps, why = _import("torch_fps")
        if tfps is None:
            notes.append(f"torch-fps skipped: {why}")
        else:
            def run_tfps(x, k):
                xt = _torch(x)[None]
                mask = torch.ones(xt.shape[:2], dtype=torch.bool, device=xt.device)
                out = tfps.farthest_point_sampling(xt, mask, k, random_start=False)[0]
                _sync()
                return out.cpu().numpy()
            out["torch-fps C++" if DEVICE == "cpu" else "torch-fps"] = (run_tfps, 0.1)
        qfps, why = _import("torch_quickfps")
        if qfps is None:
            notes.append(f"torch-quickfps skipped: {why}")
        else:
            def run_q(fn):
                def run(x, k):
                    out = fn(_torch(x), k, start_idx=0)
                    _sync()
                    return out.cpu().numpy()
                return run
            out["torch-quickfps bucket"] = (run_q(qfps.sample_idx), 1.0)
            out["torch-quickfps vanilla"] = (run_q(qfps.sample_idx_baseline), 0.1)
    fps, why = _import("fpsample") if DEVICE == "cpu" else (None, "fpsample is CPU only")
    if fps is None:
        notes.append(f"fpsample skipped: {why}")
    else:
        out["fpsample vanilla"] = (lambda x, k: fps.fps_sampling(x, k, start_idx=0), 0.1)
        if d == 3:
            out["fpsample bucket"] = (lambda x, k: fps.bucket_fps_kdline_sampling(x, k, h=7, start_idx=0), 1.0)
        else:
            notes.append("fpsample bucket FPS runs only on d = 3 (its kd-line buckets); vanilla runs on any d")
    notes.append("KeOps has no FPS primitive (a per-pick KeOps reduction is the torch loop); "
                 "it is measured on hmin and nearest")
    return out, notes


def faiss_flat(d: int):
    """(IndexFlatL2 factory or None, note). GPU index with --device cuda when faiss has GPUs."""
    faiss, why = _import("faiss")
    if faiss is None:
        return None, f"FAISS skipped: {why}"
    if DEVICE != "cpu":
        if not hasattr(faiss, "StandardGpuResources") or faiss.get_num_gpus() == 0:
            return None, "FAISS GPU skipped: this faiss build has no GPU support"
        res = faiss.StandardGpuResources()
        return (lambda: faiss.GpuIndexFlatL2(res, d)), ""
    note = "FAISS GPU not measured: faiss-cpu has no GPU index and there is no GPU here"
    return (lambda: faiss.IndexFlatL2(d)), note


def keops_lazy():
    """(pykeops.numpy.LazyTensor or None, note)."""
    mod, why = _import("pykeops.numpy")
    if mod is None:
        return None, f"KeOps skipped: {why}"
    return mod.LazyTensor, ""


def on_device(x):
    """x as hminsel's input on the bench device: the NumPy array itself on the CPU,
    a torch tensor on the GPU with --device cuda."""
    if DEVICE == "cpu":
        return x
    import torch
    return torch.as_tensor(x).to(DEVICE)


def host(a):
    """A result (NumPy or torch, any device) as a NumPy array."""
    return a.cpu().numpy() if hasattr(a, "cpu") else np.asarray(a)
