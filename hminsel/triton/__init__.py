"""Triton kernels of hminsel, one module per primitive (kernel + its launcher).

- ``keys``: the packed 64-bit argmax key shared by every kernel.
- ``direct``: the direct-form distance tile every exact value comes from.
- ``step``: the streaming step and its k-step ring (no host sync between steps).
- ``block_min``: GEMM-form candidates on ``tl.dot`` + exact direct re-check.
- ``pairs``: h_min on the tiles on or above the diagonal, exact on the rows that matter.
- ``split``: column splits, so few rows against many columns still fill the GPU.
- ``head``: the lazy algorithm's head loop on the device.
- ``batched``: many small problems, one program each, points on chip.
- ``bucket`` (+ ``bucket_layout``): the exact bucket FPS for d <= 8, one large
  cloud over the chip or one program a cloud.

Importing this package imports nothing; each module imports triton and torch.
The public entry is ``hminsel.backends.triton.TritonBackend``.
"""
