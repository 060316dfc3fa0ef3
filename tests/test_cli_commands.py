"""hminsel hmin, info, demo and --version, ``python -m hminsel``, and a closed stdout pipe."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import hminsel
from hminsel import backends
from hminsel.cli.main import main
from cli_helpers import run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_hmin_text_and_json(tmp_path, emb, capsys):
    exact = hminsel.hmin(emb)
    code, out, _ = run(capsys, "hmin", tmp_path / "emb.npy")
    assert code == 0 and f"between rows {exact.i} and {exact.j}" in out
    code, out, _ = run(capsys, "hmin", tmp_path / "emb.npy", "--json", "--metric", "cosine")
    res = json.loads(out)
    want = hminsel.hmin(emb, metric="cosine")
    assert code == 0 and (res["i"], res["j"]) == (want.i, want.j)
    assert res["h_min"] == pytest.approx(want.value) and res["N"] == 300
    np.save(tmp_path / "one.npy", emb[:1])
    code, out, _ = run(capsys, "hmin", tmp_path / "one.npy")
    assert code == 0 and "h_min = inf  (one row: no pair)" in out


def test_hmin_nonfinite_skip_reports_the_rows_left_out(tmp_path, emb, capsys):
    x = emb.copy()
    x[[4, 60, 61], 2] = np.nan
    np.save(tmp_path / "nan.npy", x)
    want = hminsel.hmin(x, nonfinite="skip")
    code, out, err = run(capsys, "hmin", tmp_path / "nan.npy", "--nonfinite", "skip", "--json",
                         "--no-progress")
    assert code == 0, err
    res = json.loads(out)
    assert (res["i"], res["j"], res["N"], res["nonfinite"]) == (want.i, want.j, 300, "skip")
    assert res["nonfinite_skipped"] == {"count": 3, "first_rows": [4, 60, 61]}
    code, out, err = run(capsys, "hmin", tmp_path / "nan.npy", "--nonfinite", "skip",
                         "--no-progress")
    assert code == 0 and f"between rows {want.i} and {want.j}" in out, err
    assert "left out 3 rows with NaN or inf (the first: row 4)" in out
    code, out, _ = run(capsys, "hmin", tmp_path / "emb.npy", "--json", "--no-progress")
    assert json.loads(out)["nonfinite_skipped"] is None  # raise: none is left out
    np.save(tmp_path / "two.npy", x[3:5])
    code, out, _ = run(capsys, "hmin", tmp_path / "two.npy", "--nonfinite", "skip", "--no-progress")
    assert code == 0 and "(fewer than two finite rows: no pair)" in out
    assert "left out 1 row with NaN or inf (row 1)" in out


def test_hmin_parquet_column(tmp_path, emb, capsys):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"vec": pa.array(emb.tolist(), pa.list_(pa.float32())),
                             "other": pa.array(emb[:, :2].tolist())}), tmp_path / "e.parquet")
    code, out, err = run(capsys, "hmin", tmp_path / "e.parquet", "--column", "vec", "--json")
    assert code == 0, err
    assert json.loads(out)["i"] == hminsel.hmin(emb).i
    code, _, err = run(capsys, "hmin", tmp_path / "e.parquet")
    assert code == 2 and "--column" in err and "vec, other" in err


def test_info(capsys):
    code, out, _ = run(capsys, "info")
    assert code == 0
    assert "numpy" in out and "python" in out and "torch" in out and "backends" in out
    if backends.why_not("cpu") is None:  # what the C++ kernels were built for
        assert "kernels: " in out and "float16 widened" in out


def test_usage_errors_and_help(capsys):
    assert main([]) == 2
    assert main(["select", "x.npy", "--k", "3"]) == 2  # --out is required
    assert main(["--help"]) == 0
    capsys.readouterr()


def test_demo(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    out_dir = tmp_path / "demo"
    code, out, err = run(capsys, "demo", "--out", out_dir, "--k", 30)
    assert code == 0, err
    assert "h_min" in out and "x the median random subset (h_min_over_random)" in out
    png = (out_dir / "digits_fps.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 20_000
    idx = np.load(out_dir / "digits_fps_indices.npy")
    m = json.loads((out_dir / "digits_fps_manifest.json").read_text())
    assert idx.shape == (30,) and m["k"] == 30 and m["N"] == 1797 and m["d"] == 64
    assert m["h_min"] > m["demo"]["random_h_min_median"]
    # one definition of the ratio, named, in the printout and the manifest alike
    assert m["random_baseline"]["h_min"] == m["demo"]["random_h_min_median"]
    assert "median" in m["random_baseline"]["statistic"]
    assert m["h_min_over_random"] == pytest.approx(m["h_min"] / m["random_baseline"]["h_min"])
    assert f"FPS is {m['h_min_over_random']:.2f}x the median" in out
    code, out, err = run(capsys, "demo", "--out", out_dir, "--k", 20)  # re-runnable: no --force
    assert code == 0, err
    assert "replaced the previous demo files" in out
    assert np.load(out_dir / "digits_fps_indices.npy").shape == (20,)


def test_demo_never_overwrites_files_it_did_not_write(tmp_path, capsys):
    pytest.importorskip("sklearn")
    pytest.importorskip("matplotlib")
    (tmp_path / "digits_fps.png").write_bytes(b"mine")
    (tmp_path / "notes.txt").write_text("mine too")
    code, out, err = run(capsys, "demo", "--out", tmp_path, "--k", 10)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "not written by an earlier demo run" in err and "--force" in err
    assert (tmp_path / "digits_fps.png").read_bytes() == b"mine"
    assert not (tmp_path / "digits_fps_manifest.json").exists()
    assert run(capsys, "demo", "--out", tmp_path, "--k", 10, "--force")[0] == 0
    assert (tmp_path / "digits_fps.png").read_bytes().startswith(b"\x89PNG")
    assert (tmp_path / "notes.txt").read_text() == "mine too"
    code, out, err = run(capsys, "demo", "--out", tmp_path / "notes.txt", "--k", 10)
    assert code == 2 and "notes.txt is a file; the demo writes a folder of files" in err


def test_python_dash_m_hminsel(tmp_path, emb):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-m", "hminsel", "select", str(tmp_path / "emb.npy"),
                           "--k", "10", "--out", str(tmp_path / "i.npy"), "--no-progress"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert np.load(tmp_path / "i.npy").shape == (10,)
    proc = subprocess.run([sys.executable, "-m", "hminsel", "hmin", str(tmp_path / "nope.npy")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"hminsel {hminsel.__version__}"


def test_hmin_skips_nonfinite_rows(tmp_path, emb, capsys):
    x = emb.copy()
    x[7, 1] = np.nan
    np.save(tmp_path / "nan.npy", x)
    code, _, err = run(capsys, "hmin", tmp_path / "nan.npy")
    assert code == 2 and "--nonfinite skip" in err
    code, out, err = run(capsys, "hmin", tmp_path / "nan.npy", "--nonfinite", "skip", "--json")
    assert code == 0, err
    assert json.loads(out)["h_min"] == pytest.approx(hminsel.hmin(x, nonfinite="skip").value)


def test_a_closed_stdout_pipe_is_not_an_error(tmp_path, emb):
    proc = subprocess.run(f"{sys.executable} -m hminsel info | head -c 10", shell=True, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "error" not in proc.stderr and "Broken pipe" not in proc.stderr
