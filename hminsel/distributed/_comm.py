"""The few collectives the distributed selection needs, over torch.distributed.

NumPy arrays go in and out; tensors live on the CPU for gloo and on the
current CUDA device for NCCL. Every helper is called by every rank in the same
order with the same shapes, so a mismatch is an error on every rank, never a
hang.
"""
from __future__ import annotations

import numpy as np


def _dist():
    import torch.distributed as dist
    return dist


class Comm:
    """A process group and the device its collectives use."""

    def __init__(self, group=None):
        import torch
        dist = _dist()
        if not dist.is_available() or not dist.is_initialized():
            raise RuntimeError("hminsel.distributed needs an initialised torch.distributed process "
                               "group (torchrun, or dist.init_process_group)")
        self.torch, self.group = torch, group
        self.rank = dist.get_rank(group)
        self.size = dist.get_world_size(group)
        backend = dist.get_backend(group)
        self.device = (torch.device("cuda", torch.cuda.current_device())
                       if backend == "nccl" else torch.device("cpu"))
        self.collectives = 0

    def all_gather(self, array: np.ndarray) -> np.ndarray:
        """(size, *array.shape): every rank's array, in rank order."""
        torch = self.torch
        t = torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
        out = [torch.empty_like(t) for _ in range(self.size)]
        _dist().all_gather(out, t, group=self.group)
        self.collectives += 1
        return np.stack([o.cpu().numpy() for o in out])

    def all_reduce_sum(self, array: np.ndarray) -> np.ndarray:
        torch = self.torch
        t = torch.from_numpy(np.ascontiguousarray(array)).to(self.device)
        _dist().all_reduce(t, op=_dist().ReduceOp.SUM, group=self.group)
        self.collectives += 1
        return t.cpu().numpy()

    def all_to_all(self, array: np.ndarray, send, recv) -> np.ndarray:
        """Rows ``array[sum(send[:j]):sum(send[:j + 1])]`` go to rank j; returns the rows every
        rank sent this one, in rank order (``recv[j]`` from rank j: every rank knows both)."""
        torch = self.torch
        array = np.ascontiguousarray(array)
        if not array.flags.writeable:  # a memory-mapped input's rows: torch wants a writable buffer
            array = array.copy()
        t = torch.from_numpy(array).to(self.device)
        out = torch.empty((int(np.sum(recv)), *array.shape[1:]), dtype=t.dtype, device=self.device)
        _dist().all_to_all_single(out, t, output_split_sizes=[int(v) for v in recv],
                                  input_split_sizes=[int(v) for v in send], group=self.group)
        self.collectives += 1
        return out.cpu().numpy()
