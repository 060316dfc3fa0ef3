"""The CUDA backend's host code: the run-time loader of ``csrc/cuda`` and the launchers.

- ``loader``: source lookup, NVRTC build through CuPy (plain and cooperative),
  argument checks, launches on the caller's stream.
- ``kernels``: launch sizing and the primitives built from the kernels
  (persistent steps, the head loop in one launch, certified block_min).

Importing this package imports nothing; the public entry is
``hminsel.backends.cuda.CudaBackend`` (``backend="cuda"``).
"""
