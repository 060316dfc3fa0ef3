"""Drop-in signatures of other FPS libraries: swap one import.

    from hminsel.compat.torch_cluster import fps            # torch_cluster.fps
    from hminsel.compat.pytorch3d import sample_farthest_points
    from hminsel.compat.torch_fps import farthest_point_sampling

Each follows its library's documented semantics (arguments, defaults, output
shapes, padding) and runs hminsel's exact FPS: distances in the direct form,
float32 accumulation (float64 for float64 input), ties to the lowest index.
The sequence matches the peer's whenever it is unambiguous (no near-ties at
the peer's rounding). Importing a submodule imports torch and registers
``hminsel.torch_ops``; these functions trace under ``torch.compile``.
"""
