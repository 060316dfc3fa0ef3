"""Drop-in signatures of other FPS libraries: swap one import.

    from hminsel.compat.torch_cluster import fps            # torch_cluster.fps
    from hminsel.compat.pytorch3d import sample_farthest_points
    from hminsel.compat.torch_fps import farthest_point_sampling
    from hminsel.compat import torch_quickfps                # torch_quickfps.sample, sample_idx
    from hminsel.compat import fpsample                      # fpsample.*_sampling (NumPy only)

Each follows its library's documented semantics (arguments, defaults, output
shapes, padding) and runs hminsel's exact FPS: distances in the direct form,
float32 accumulation (float64 for float64 input), ties to the lowest index.
The sequence matches the peer's whenever it is unambiguous (no near-ties at
the peer's rounding). Importing a torch submodule imports torch and registers
``hminsel.torch_ops``; those functions trace under ``torch.compile`` (the
fpsample module needs NumPy only).
"""
