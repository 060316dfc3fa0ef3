"""What the loaders raise, and the messages they share."""
from __future__ import annotations

import os


class LoadError(ValueError):
    """The file exists but does not hold a usable (N, d) numeric matrix."""


def _corrupt(path, what, exc):
    return LoadError(f"{path}: cannot read as {what} ({type(exc).__name__}: {exc})")


def _pick(kind, name, available, path):
    """The requested name, or the only one available; else a LoadError listing them."""
    available = list(available)
    if not available:
        what = {"key": "arrays", "column": "columns", "split": "splits"}[kind]
        raise LoadError(f"{path}: holds no {what}" + (f" (asked for {kind} {name!r})" if name else ""))
    if name is None:
        if len(available) == 1:
            return available[0]
        flag = {"key": "--key", "column": "--column", "split": "--split"}[kind]
        raise LoadError(f"{path}: holds {len(available)} candidates for {kind}, choose one with "
                        f"{flag} (or {kind}=): {', '.join(map(str, available)) or '(none)'}")
    if name not in available:
        raise LoadError(f"{path}: no {kind} {name!r}; available: "
                        f"{', '.join(map(str, available)) or '(none)'}")
    return name


def no_such_path(path) -> FileNotFoundError:
    """The error for an input path that does not exist (a quoted wildcard: say who expands it)."""
    glob = any(c in os.path.basename(path) for c in "*?[")
    return FileNotFoundError(f"no such file or directory: {path}" + (
        " (hminsel does not expand wildcards: leave the pattern unquoted for the shell to "
        "expand, or pass the folder)" if glob else ""))
