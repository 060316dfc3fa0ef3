"""One table across suites: per case, hminsel's time against the best peer's.

Reads ``<out>/<suite>.json`` (whatever suites have results there) and writes
``<out>/summary.md``. Run by run.py after the suites; also on its own:
``python benchmarks/summary.py [benchmarks/results]``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import common

HEADLINE = {"select": "hminsel lazy", "seed": "hminsel", "clouds": "hminsel select_batched",
            "labels": "hminsel select_batched",
            "hmin": "hminsel hmin", "nearest": "hminsel nearest", "bigcloud": "hminsel bucket"}


def write(out: Path) -> Path | None:
    lines, machine, runs = [], None, []
    for suite, ours_name in HEADLINE.items():
        path = out / f"{suite}.json"
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        machine = machine or data["machine"]
        runs.append(f"`{suite}` {data['machine']['commit']} ({data['machine']['date'][:16]})")
        cases = {}
        for r in data["rows"]:
            cases.setdefault((r["case"], r.get("dtype", "")), []).append(r)
        for (case, dtype), rows in cases.items():
            ours = next((r for r in rows if r["method"] == ours_name and r.get("time")), None)
            others = [r for r in rows if not r["method"].startswith("hminsel") and r.get("time")]
            best = min(others, key=lambda r: r["time"], default=None)
            tfps = next((r for r in others if r["method"].startswith("torch-fps")), None)
            if ours is None:
                continue
            lines.append([suite, case, dtype, common.fmt_time(ours["time"]),
                          f"{ours['ceiling_frac']:.0%}" if ours.get("ceiling_frac") is not None else "",
                          best["method"] if best else "(no peer ran)",
                          ("est. " if best and best.get("est") else "") + (common.fmt_time(best["time"]) if best else ""),
                          f"{best['time'] / ours['time']:.1f}x" if best else "",
                          f"{tfps['time'] / ours['time']:.1f}x" if tfps else ""])
    if not lines:
        return None
    head = ["suite", "case", "dtype", "hminsel", "of ceiling", "best peer", "peer time", "hminsel speed-up",
            "vs torch-fps"]
    table = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    table += ["| " + " | ".join(line) + " |" for line in lines]
    md = out / "summary.md"
    where = (f"{machine['cpu']}, {machine['cores']} cores, {machine['ram_gib']} GiB; each suite's run "
             f"(commit, date): {', '.join(runs)}")
    md.write_text(f"# Summary: hminsel against the best peer per case\n\n{where}\n\n"
                  "speed-up = peer time / hminsel time (> 1: hminsel faster); est. = the peer ran a prefix "
                  "of the picks (or query rows) and was extrapolated.\n\n" + "\n".join(table) + "\n")
    return md


if __name__ == "__main__":
    print(write(Path(sys.argv[1]) if len(sys.argv) > 1 else common.RESULTS))
