"""Exact distributed FPS under Spark's TorchDistributor, unchanged.

    python examples/spark_torchdistributor.py emb.npy 1000 [processes]

Checked on 2026-11-22 with pyspark 4.3.0 in local mode (2 processes, gloo):
the indices equal ``hminsel.select`` on the whole array.
"""
import sys

import numpy as np
from pyspark.ml.torch.distributor import TorchDistributor
from pyspark.sql import SparkSession


def run(path, k):
    import numpy as np
    import torch.distributed as dist

    import hminsel.distributed as hd
    dist.init_process_group("gloo")
    x = np.load(path, mmap_mode="r")
    r, p = dist.get_rank(), dist.get_world_size()
    sel = hd.select(np.asarray(x[len(x) * r // p:len(x) * (r + 1) // p]), k)
    return np.asarray(sel.indices).tolist()


if __name__ == "__main__":
    path, k = sys.argv[1], int(sys.argv[2])
    processes = int(sys.argv[3]) if len(sys.argv) > 3 else 2
    spark = SparkSession.builder.master(f"local[{processes}]").appName("hminsel").getOrCreate()
    picked = TorchDistributor(num_processes=processes, local_mode=True, use_gpu=False).run(run, path, k)
    import hminsel
    same = np.array_equal(np.asarray(picked), hminsel.select(np.load(path), k).indices)
    print(f"{len(picked)} picks; equal to hminsel.select on one process: {same}")
    spark.stop()
