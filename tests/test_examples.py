"""examples/active_learning.py: core-set rounds warm-started from the labelled rows."""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the example reads scikit-learn's digits")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _example():
    spec = importlib.util.spec_from_file_location("active_learning",
                                                  os.path.join(ROOT, "examples", "active_learning.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("per_group", [False, True], ids=["select", "select_batched"])
def test_active_learning_rounds_continue_from_the_labelled_rows(per_group):
    example = _example()
    first, _ = example.run(rounds=1, batch=10, start=6, per_group=per_group)
    labelled, history = example.run(rounds=3, batch=10, start=6, per_group=per_group)
    assert [n for n, _, _ in history] == [16, 26, 36] and len(set(labelled.tolist())) == 36
    assert labelled[:16].tolist() == first.tolist()  # each round keeps the rows labelled before it
    assert all(0.0 <= acc <= 1.0 for _, acc, _ in history)
    if per_group:  # ten more rows from each parity group a round, the first six drawn at random
        assert np.bincount(labelled[6:] % 2).tolist() == [15, 15]
