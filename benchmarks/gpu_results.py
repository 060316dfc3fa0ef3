"""The GPU check's results as one Markdown page: phases, probes, benchmarks against targets.

    python3 benchmarks/gpu_results.py LOGS > gpu.md     # LOGS: the folder gpu_check.sh wrote

Reads ``phases.tsv``, ``probes.jsonl``, ``bench_gpu.jsonl`` and ``env.log`` from
LOGS (each optional) and prints a page ready to commit under benchmarks/results/
(device, date, commit, sizes, medians, ratios to the measured ceilings, each
target met or missed).
"""
from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

# (row name pattern, field, op, bound, target): checked on the rows that match.
TARGETS = [
    (r"^step \d+x1024 bf16 triton$", "of_ceiling", ">=", 0.85, ">= 85% of a device-to-device copy"),
    (r"^step \d+x1024 bf16 cuda", "of_ceiling", ">=", 0.85, ">= 85% of a device-to-device copy"),
    (r"^seed 20000x1024 .* triton$", "median_s", "<=", 0.100, "<= 100 ms"),
    (r"^seed 20000x1024 .* cuda", "median_s", "<=", 0.100, "<= 100 ms"),
    (r"^select 20000x768 fp16 k=10000 cuda", "median_s", "<=", 0.050, "<= 50 ms"),
    (r"^hmin \d+x768 fp16 triton$", "of_floor", "<=", 2.0, "within 2x of one x @ x.T"),
    (r"^lazy FPS k=100000 of \d+x1024 bf16 triton$", "median_s", "<=", 10.0, "<= 10 s"),
    (r"^batched torch-fps$", "speedup", ">=", 2.0, ">= 2x torch-fps (select_batched)"),
]
# (row pattern, the row it is measured against, largest median ratio, target): a row's median
# over the other's, each the first row of its pattern.
RELATIVE = [
    (r"^step \d+x1024 bf16 cuda persistent$", r"^step \d+x1024 bf16 triton$", 1.10,
     "within 10% of the Triton step"),
    (r"^hmin \d+x768 fp16 triton$", r"^hmin FAISS GPU flat k=2$", 0.5, ">= 2x FAISS GPU"),
]


def _lines(path: Path):
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line.strip()]


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _verdict(row, rows=()):
    out = []
    for pattern, field, op, bound, text in TARGETS:
        if re.search(pattern, row["name"]):
            value = row.get(field)
            if _missing(value):
                out.append(f"{text}: not measured")
            else:
                ok = value >= bound if op == ">=" else value <= bound
                out.append(f"{text}: {'met' if ok else 'MISSED'}")
            break
    for pattern, against, most, text in RELATIVE:
        if re.search(pattern, row["name"]):
            other = next((r for r in rows if re.search(against, r["name"])), None)
            mine, theirs = row.get("median_s"), other and other.get("median_s")
            if _missing(mine) or _missing(theirs) or not theirs:
                out.append(f"{text}: not measured")
            else:
                ratio = mine / theirs
                out.append(f"{text}: {'met' if ratio <= most else 'MISSED'} ({ratio:.2f}x its time)")
    return "; ".join(out)


def _ms(seconds) -> str:
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "-"
    return f"{1e3 * seconds:.3f}"


def render(logs: Path) -> str:
    out = ["# GPU check", ""]
    env = _lines(logs / "env.log")
    out += ["```", *env[:14], "```", ""] if env else ["(no env.log)", ""]
    out += ["| phase | exit | seconds | cap |", "|---|---|---|---|"]
    for line in _lines(logs / "phases.tsv"):
        name, rc, secs, cap = line.split("\t")
        flag = "" if rc == "0" else (" (timed out)" if rc in ("124", "137") else " (failed)")
        out.append(f"| {name} | {rc}{flag} | {secs} | {cap} |")
    probes = [json.loads(line) for line in _lines(logs / "probes.jsonl")]
    if probes:
        out += ["", "Probes:", ""] + [f"- `{json.dumps(p)}`" for p in probes]
    rows = [json.loads(line) for line in _lines(logs / "bench_gpu.jsonl")]
    if rows:
        out += ["", "| benchmark | median ms | min..max ms | note | target |", "|---|---|---|---|---|"]
        for r in rows:
            spread = f"{_ms(r.get('min_s'))}..{_ms(r.get('max_s'))}"
            out.append(f"| {r['name']} | {_ms(r.get('median_s'))} | {spread} | {r.get('note', '')} | "
                       f"{_verdict(r, rows)} |")
    missing = _unmeasured(rows)
    if missing:
        out += ["", "Targets with no row (not measured: a phase skipped, failed or cut short):", ""]
        out += [f"- {text} (`{pattern}`)" for pattern, text in missing]
    return "\n".join(out) + "\n"


def _unmeasured(rows):
    """``(pattern, target)`` of every target that no benchmark row matches."""
    wanted = [(p, text) for p, _, _, _, text in TARGETS] + [(p, text) for p, _, _, text in RELATIVE]
    return [(p, text) for p, text in wanted if not any(re.search(p, r["name"]) for r in rows)]


if __name__ == "__main__":
    if len(sys.argv) != 2 or not Path(sys.argv[1]).is_dir():
        sys.exit("usage: python3 benchmarks/gpu_results.py LOGS_FOLDER (the folder gpu_check.sh wrote)")
    sys.stdout.write(render(Path(sys.argv[1])))
