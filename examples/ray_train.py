"""Exact distributed FPS under Ray Train's TorchTrainer, unchanged.

    python examples/ray_train.py emb.npy 1000 [workers]

The per-worker loop calls ``hminsel.distributed.select`` on its slice of the
rows; TorchTrainer has already set up the torch.distributed (gloo) group.
Checked on 2026-11-22 with Ray 2.60.0 (2 CPU workers): the indices equal
``hminsel.select`` on the whole array.
"""
import os
import sys

import numpy as np
from ray.train import ScalingConfig, get_context
from ray.train.torch import TorchTrainer


def loop(config):
    import numpy as np

    import hminsel.distributed as hd
    ctx = get_context()
    r, p = ctx.get_world_rank(), ctx.get_world_size()
    x = np.load(config["path"], mmap_mode="r")
    sel = hd.select(np.asarray(x[len(x) * r // p:len(x) * (r + 1) // p]), config["k"])
    if r == 0:
        np.save(config["out"], np.asarray(sel.indices))


if __name__ == "__main__":
    # absolute: Ray runs each worker in a folder of its own
    path, k = os.path.abspath(sys.argv[1]), int(sys.argv[2])
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    out = path.rsplit(".", 1)[0] + f".ray_picked_{k}.npy"
    TorchTrainer(loop, train_loop_config={"path": path, "k": k, "out": out},
                          scaling_config=ScalingConfig(num_workers=workers)).fit()
    import hminsel
    same = np.array_equal(np.load(out), hminsel.select(np.load(path), k).indices)
    print(f"{k} picks on {workers} workers; equal to hminsel.select on one process: {same}")
