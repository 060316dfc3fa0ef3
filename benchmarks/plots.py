"""PNG plots of a suite's rows: time against N, speed-up over peers, fraction of
the measured ceiling. Needs matplotlib; without it the plots are a skip note."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def plot_suite(out: Path, suite: str, rows: list[dict]) -> list[str]:
    """Write ``<suite>_time.png``, ``<suite>_speedup.png``, ``<suite>_ceiling.png``;
    returns the file names written."""
    rows = [r for r in rows if r.get("status") == "ok" and r.get("time")]
    if not rows:
        return []
    plt = _plt()
    written = []
    # time against N, one line per (method, data kind[, d]); float32 only
    fig, ax = plt.subplots(figsize=(8, 5))
    lines = defaultdict(list)
    for r in rows:
        if r.get("dtype", "float32") != "float32":
            continue
        lines[(r["method"], r.get("data", ""))].append((r["N"] * r.get("B", 1), r["time"], r.get("est")))
    methods = sorted({m for m, _ in lines})
    cmap = plt.get_cmap("tab10" if len(methods) <= 10 else "tab20")
    styles = {"clustered": ("-", "o"), "gaussian": ("--", "s"), "text": (":", "*")}
    for (method, kind), pts in sorted(lines.items()):
        pts.sort()
        ls, mk = styles.get(kind, ("-.", "^"))
        color = cmap(methods.index(method) % cmap.N)
        lw = 2.2 if method.startswith("hminsel") else 1.0
        ax.plot([p[0] for p in pts], [p[1] for p in pts], ls, marker=mk, color=color, lw=lw,
                label=f"{method} ({kind})")
        for p in pts:
            if p[2]:
                ax.plot(p[0], p[1], "x", color="k", ms=5)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("N (points; B x N for point clouds)")
    ax.set_ylabel("median time, s (x: extrapolated)")
    ax.set_title(f"{suite}: time against N (shapes differ in d and k too; see the table)")
    ax.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    fig.savefig(out / f"{suite}_time.png", dpi=110)
    plt.close(fig)
    written.append(f"{suite}_time.png")
    # speed-up of hminsel's headline method over each peer, per case
    peers_rows = [r for r in rows if not r["method"].startswith("hminsel") and r.get("vs_hminsel")]
    if peers_rows:
        cases = list(dict.fromkeys(f"{r['case']} {r.get('dtype', '')}".strip() for r in peers_rows))
        methods = list(dict.fromkeys(r["method"] for r in peers_rows))
        fig, ax = plt.subplots(figsize=(10, 0.45 * len(cases) * max(1, len(methods) / 3) + 2))
        h = 0.8 / len(methods)
        for j, m in enumerate(methods):
            vals = {f"{r['case']} {r.get('dtype', '')}".strip(): r["vs_hminsel"] for r in peers_rows
                    if r["method"] == m}
            ys = [i + j * h for i, c in enumerate(cases) if c in vals]
            ax.barh(ys, [vals[c] for c in cases if c in vals], height=h, label=m)
        ax.axvline(1, color="k", lw=0.8)
        ax.set_xscale("log")
        ax.set_yticks([i + 0.4 - h / 2 for i in range(len(cases))])
        ax.set_yticklabels(cases, fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("peer time / hminsel time (> 1: hminsel faster)")
        ax.set_title(f"{suite}: speed-up of hminsel over each peer")
        ax.legend(fontsize=7)
        fig.tight_layout()
        fig.savefig(out / f"{suite}_speedup.png", dpi=110)
        plt.close(fig)
        written.append(f"{suite}_speedup.png")
    # fraction of the ceiling
    frac = [r for r in rows if r.get("ceiling_frac") is not None]
    if frac:
        fig, ax = plt.subplots(figsize=(10, 0.22 * len(frac) + 2))
        labels = [f"{r['case']} {r.get('dtype', '')} | {r['method']}" for r in frac]
        colors = ["C0" if r["method"].startswith("hminsel") else "C7" for r in frac]
        ax.barh(range(len(frac)), [r["ceiling_frac"] for r in frac], color=colors)
        ax.axvline(1, color="r", lw=0.8)
        ax.set_xscale("log")
        ax.set_yticks(range(len(frac)))
        ax.set_yticklabels(labels, fontsize=5)
        ax.invert_yaxis()
        ax.set_xlabel(f"achieved {frac[0]['unit']} / measured ceiling (work model in the .md)")
        ax.set_title(f"{suite}: fraction of the roofline (blue: hminsel)")
        fig.tight_layout()
        fig.savefig(out / f"{suite}_ceiling.png", dpi=110)
        plt.close(fig)
        written.append(f"{suite}_ceiling.png")
    return written


if __name__ == "__main__":   # re-plot saved results: python benchmarks/plots.py [benchmarks/results]
    import json
    import sys
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "results")
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        if "rows" in data:
            print(path.stem, plot_suite(folder, path.stem, data["rows"]))
