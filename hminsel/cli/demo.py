"""``hminsel demo``: FPS on real data that needs no download.

scikit-learn ships the UCI digits (1797 handwritten digits, 8x8 pixels, so
d = 64) inside its wheel. The demo picks k of them by farthest-point selection,
compares the subset's h_min with random subsets of the same size, and draws the
picks on a 2-D PCA map next to the picked images.
"""
from __future__ import annotations

import io
import json
import os
import shlex
import time

import numpy as np

from ..io import together, write_bytes_atomic, write_json_atomic, write_npy_atomic
from .arguments import add_backend_argument
from .report import UserError, build_manifest, finite, fmt, random_baseline

FILES = {"figure": "digits_fps.png", "indices": "digits_fps_indices.npy",
         "manifest": "digits_fps_manifest.json"}
# Written first, into --out: the demo's files there are its own and a later run
# may replace them without --force. Other files in the folder are never touched.
MARKER = ".hminsel-demo.json"
RANDOM_SEEDS = range(20)
INSTALL = 'pip install "hminsel[demo]"'


def add_arguments(p):
    p.description = ("Pick the k most spread-out of scikit-learn's 1797 bundled digit images "
                     "(no download), compare with random subsets, draw a PNG.")
    p.add_argument("--out", default="demo-out", help="output folder (default: demo-out)")
    p.add_argument("--k", type=int, default=100, help="digits to pick (default: 100)")
    add_backend_argument(p)
    p.add_argument("--force", action="store_true",
                   help="overwrite files named like the demo's in --out even when an earlier "
                        "demo run did not write them (nothing else is touched)")


def _need(module: str, package: str):
    try:
        return __import__(module, fromlist=["_"])
    except ImportError:
        raise UserError(f"the demo needs scikit-learn and matplotlib; {package} is missing: "
                        f"{INSTALL}") from None


def _ours(folder: str) -> bool:
    """True when an earlier ``hminsel demo`` wrote the demo files in ``folder``.

    Its marker says so; a demo manifest (from before the marker) does too.
    """
    for name, key in ((MARKER, "written_by"), (FILES["manifest"], "command")):
        try:
            with open(os.path.join(folder, name), encoding="utf-8") as fh:
                value = json.load(fh).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, str) and value.startswith("hminsel demo"):
            return True
    return False


def run(args) -> int:
    import hminsel
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise UserError(f"--out {args.out} is a file; the demo writes a folder of files: pass "
                        "--out NEW_DIR")
    paths = {name: os.path.join(args.out, f) for name, f in FILES.items()}
    existing = [p for p in [*paths.values(), os.path.join(args.out, MARKER)] if os.path.exists(p)]
    replace = bool(existing) and _ours(args.out)
    if existing and not (replace or args.force):
        names = ", ".join(os.path.basename(p) for p in existing)
        raise UserError(f"{args.out}/ holds {names}, not written by an earlier demo run (no "
                        f"{MARKER}); pass --force to overwrite those files, or --out NEW_DIR")
    datasets = _need("sklearn.datasets", "scikit-learn")
    _need("matplotlib", "matplotlib")

    x, y = datasets.load_digits(return_X_y=True)  # (1797, 64) float64 in [0, 16]
    if not 2 <= args.k <= len(x):
        raise UserError(f"--k must be between 2 and {len(x)} for the digits; got {args.k}")
    t0 = time.perf_counter()
    sel = hminsel.select(x, args.k, backend=args.backend)
    seconds = time.perf_counter() - t0
    idx = np.asarray(sel.indices)

    randoms = [random_baseline(x, args.k, metric="l2", backend=args.backend, seed=s)
               for s in RANDOM_SEEDS]
    rand_h = np.array([r["h_min"] for r in randoms])
    med = float(np.median(rand_h))
    baseline = {  # what h_min_over_random divides by, in the manifest and the printout alike
        "statistic": f"median h_min of {len(randoms)} random subsets (seeds "
                     f"{RANDOM_SEEDS[0]}-{RANDOM_SEEDS[-1]})",
        "seed": None, "seeds": list(RANDOM_SEEDS), "size": int(args.k), "h_min": finite(med),
        "method": randoms[0]["method"], "seconds": sum(r["seconds"] for r in randoms)}
    cover_fps = float(np.max(hminsel.nearest(x, x[idx], backend=args.backend)[0]))
    rand_idx = np.random.default_rng(0).choice(len(x), size=args.k, replace=False)
    cover_rand = float(np.max(hminsel.nearest(x, x[rand_idx], backend=args.backend)[0]))
    per_class = np.bincount(y[idx], minlength=10)

    manifest = build_manifest(
        sel=sel, x=x, source={"input": "sklearn.datasets.load_digits()", "key": None,
                              "column": None, "split": None},
        start=0, seed=None, baseline=baseline,
        timings={"load": None, "select": seconds, "random_baseline": baseline["seconds"]},
        command=shlex.join(["hminsel", "demo", "--out", args.out, "--k", str(args.k)]),
        outputs={k: os.path.abspath(p) for k, p in paths.items()})
    manifest["demo"] = {
        "random_h_min_by_seed": {str(r["seed"]): r["h_min"] for r in randoms},
        "random_h_min_median": finite(np.median(rand_h)), "random_h_min_best": finite(rand_h.max()),
        "coverage_radius": {"fps": cover_fps, "random_seed_0": cover_rand},
        "picks_per_class": {str(c): int(n) for c, n in enumerate(per_class)}}

    png = _figure(x, y, idx, sel.hmin, rand_h, args.k)
    force = args.force or replace
    with together():  # the demo's files land as one set, or none do
        write_json_atomic(os.path.join(args.out, MARKER),
                          {"written_by": "hminsel demo", "files": sorted(FILES.values())},
                          force=force)
        write_bytes_atomic(paths["figure"], png, force=force)
        write_npy_atomic(paths["indices"], idx.astype(np.int64), force=force)
        write_json_atomic(paths["manifest"], manifest, force=force)

    print(f"hminsel demo: scikit-learn digits, {len(x)} images of 8x8 pixels (d = 64), 10 classes")
    print(f"  picked {args.k} digits by farthest-point selection in {seconds * 1e3:.1f} ms "
          f"({sel.algorithm} on the {sel.backend} backend)")
    print("  h_min, the smallest distance between two picked digits (larger = more spread out):")
    print(f"    FPS selection      {fmt(sel.hmin):>8}")
    print(f"    random subsets     {fmt(med):>8}  (median of {len(rand_h)} seeds; best "
          f"{fmt(rand_h.max())})  ->  FPS is {manifest['h_min_over_random']:.2f}x the median "
          "random subset (h_min_over_random)")
    print(f"  coverage radius, the farthest any digit is from a pick: FPS {cover_fps:.4g}, "
          f"random (seed 0) {cover_rand:.4g}")
    print(f"  classes covered: {int((per_class > 0).sum())} of 10; picks per class "
          + " ".join(f"{c}:{n}" for c, n in enumerate(per_class)))
    print(f"wrote {paths['figure']}  (the picture), {paths['indices']}, {paths['manifest']}")
    if existing:
        print(f"  (replaced the previous demo files in {args.out}/"
              f"{'' if replace else ' (--force)'})")
    return 0


def _pca2(x):
    """First two principal components (NumPy SVD; no scikit-learn needed)."""
    xc = x - x.mean(axis=0)
    _, _, vt = np.linalg.svd(xc, full_matrices=False)
    return xc @ vt[:2].T


def _mosaic(images, cols, gap=(4, 1)):
    """Tile (n, 8, 8) images row by row with NaN gaps (rows, columns) between tiles."""
    n, h, w = images.shape
    rows = -(-n // cols)
    sh, sw = h + gap[0], w + gap[1]
    out = np.full((rows * sh, cols * sw - gap[1]), np.nan)
    for t, img in enumerate(images):
        r, c = divmod(t, cols)
        out[r * sh:r * sh + h, c * sw:c * sw + w] = img
    return out


def _figure(x, y, idx, h_fps, rand_h, k) -> bytes:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import colors

    p = _pca2(x)
    fig = plt.figure(figsize=(16, 6.0), dpi=120, layout="constrained")
    grid = fig.add_gridspec(1, 3, width_ratios=[1.35, 1.0, 0.55])
    fig.suptitle(f"hminsel demo: farthest-point selection of {k} of {len(x)} handwritten digits "
                 "(scikit-learn digits, 64-D)", fontsize=14, fontweight="bold")

    ax = fig.add_subplot(grid[0])
    ax.scatter(p[:, 0], p[:, 1], s=7, c="0.72", alpha=0.6, lw=0, label=f"all {len(x)} digits")
    order = np.arange(len(idx))
    pts = ax.scatter(p[idx, 0], p[idx, 1], c=order + 1, cmap="plasma", s=42, edgecolors="black",
                     linewidths=0.5, label=f"{k} FPS picks", zorder=3)
    for t in range(min(10, len(idx))):
        ax.annotate(str(t + 1), p[idx[t]], xytext=(4, 4), textcoords="offset points",
                    fontsize=9, fontweight="bold", zorder=4)
    fig.colorbar(pts, ax=ax, shrink=0.8, pad=0.01, label="pick order (1 = first)")
    ax.set_title("picks on a 2-D PCA map of the pixels\n(selection runs in all 64 dimensions)",
                 fontsize=11)
    ax.set_xlabel("principal component 1")
    ax.set_ylabel("principal component 2")
    ax.legend(loc="lower left", fontsize=9, framealpha=0.9)
    ax.set_aspect("equal", adjustable="datalim")

    ax = fig.add_subplot(grid[1])
    n_show = min(len(idx), 60)
    cols = 10
    ax.imshow(_mosaic(x[idx[:n_show]].reshape(-1, 8, 8), cols), cmap="gray_r",
              norm=colors.Normalize(0, 16), interpolation="nearest")
    for t in range(n_show):
        r, c = divmod(t, cols)
        ax.text(c * 9 + 3.5, r * 12 + 8.2, f"#{t + 1}: {y[idx[t]]}", color="tab:blue",
                fontsize=6.5, ha="center", va="top")
    ax.set_title(f"the first {n_show} picks, in order (row by row)\n#pick: the digit's label",
                 fontsize=11)
    ax.set_axis_off()

    ax = fig.add_subplot(grid[2])
    med = float(np.median(rand_h))
    ax.bar([0, 1], [h_fps, med], color=["tab:orange", "0.6"], width=0.6)
    ax.scatter(np.full(len(rand_h), 1.0) + np.linspace(-0.15, 0.15, len(rand_h)), rand_h,
               s=10, c="black", zorder=3, label=f"{len(rand_h)} random seeds")
    ax.text(0, h_fps, f"{h_fps:.1f}", ha="center", va="bottom", fontsize=11, fontweight="bold")
    ax.text(1, rand_h.max(), f"{med:.1f}\n(median)", ha="center", va="bottom", fontsize=10)
    ax.set_xticks([0, 1], ["FPS", "random"])
    ax.set_ylim(0, max(h_fps, rand_h.max()) * 1.22)
    ax.set_ylabel("h_min: smallest distance inside the subset")
    ax.set_title(f"h_min of {k} digits\nFPS = {h_fps / med:.2f}x random", fontsize=11)
    ax.legend(loc="upper right", fontsize=8)
    ax.spines[["top", "right"]].set_visible(False)

    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    plt.close(fig)
    return buf.getvalue()
