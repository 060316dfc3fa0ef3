"""Active learning with k-center greedy (core-set) rounds, warm-started from the labelled rows.

Each round labels ``--batch`` more rows: the rows farthest from everything
labelled so far, ``hminsel.select(x, k=len(labelled) + batch, init=labelled)``
(the exact greedy sequence continued from the labelled set). With
``--per-group`` the pool is split by a group column (here: the digit's row
parity stands in for a data source) and each group gets its share through
``hminsel.select_batched(x, k, groups=..., init=labelled)``. A logistic
regression trained on the labelled rows is scored on a held-out split after
every round, next to the same number of random rows.

    python examples/active_learning.py --rounds 5 --batch 20

Needs scikit-learn (``pip install -e ".[demo]"``); reads its bundled digits.
"""
from __future__ import annotations

import argparse

import numpy as np

import hminsel


def score(x_train, y_train, rows, x_test, y_test) -> float:
    from sklearn.linear_model import LogisticRegression
    if len(np.unique(y_train[rows])) < 2:
        return float("nan")
    model = LogisticRegression(max_iter=2000).fit(x_train[rows], y_train[rows])
    return float(model.score(x_test, y_test))


def run(rounds: int = 5, batch: int = 20, start: int = 10, per_group: bool = False, seed: int = 0):
    """Rows labelled by core-set rounds and by random draws, and each round's test accuracy."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    x_train, x_test, y_train, y_test = train_test_split(x, digits.target, test_size=0.3,
                                                        random_state=seed)
    groups = np.arange(len(x_train)) % 2  # two "sources"
    rng = np.random.default_rng(seed)
    labelled = rng.choice(len(x_train), start, replace=False)  # the first labels: random
    randomly = labelled.copy()
    history = []
    for _ in range(rounds):
        if per_group:  # each source gets its share of the batch, continuing from its labels
            have = np.bincount(groups[labelled], minlength=2)
            quota = {g: int(have[g] + batch // 2) for g in (0, 1)}
            res = hminsel.select_batched(x_train, quota, groups=groups, init=labelled)
            labelled = np.concatenate([labelled, np.setdiff1d(res.indices, labelled)])
        else:
            sel = hminsel.select(x_train, len(labelled) + batch, init=labelled)
            labelled = np.asarray(sel.indices)
        rest = np.setdiff1d(np.arange(len(x_train)), randomly)
        randomly = np.concatenate([randomly, rng.choice(rest, len(labelled) - len(randomly),
                                                        replace=False)])
        history.append((len(labelled), score(x_train, y_train, labelled, x_test, y_test),
                        score(x_train, y_train, randomly, x_test, y_test)))
    return labelled, history


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--batch", type=int, default=20)
    p.add_argument("--start", type=int, default=10, help="random rows labelled first")
    p.add_argument("--per-group", action="store_true", help="quotas per group (select_batched)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    _, history = run(args.rounds, args.batch, args.start, args.per_group, args.seed)
    print("labelled  core-set accuracy  random accuracy")
    for n, ours, theirs in history:
        print(f"{n:8d}  {ours:17.3f}  {theirs:15.3f}")


if __name__ == "__main__":
    main()
