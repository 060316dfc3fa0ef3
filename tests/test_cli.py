"""The command line end to end (hminsel select), in-process through ``main([...])``."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import hminsel
from hminsel.cli.main import main
from hminsel.cli.report import shown
from cli_helpers import run


def test_select_writes_indices_manifest_and_subset(tmp_path, emb, capsys):
    code, out, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 25, "--out",
                         tmp_path / "idx.npy", "--data", tmp_path / "data.jsonl",
                         "--subset-out", tmp_path / "sub.jsonl", "--no-progress",
                         "--backend", "numpy")
    assert code == 0, err
    assert "picked 25 of 300 rows" in out and "h_min" in out
    idx = np.load(tmp_path / "idx.npy")
    assert idx.dtype == np.int64 and idx.shape == (25,) and len(set(idx.tolist())) == 25
    expected = hminsel.select(emb, 25, backend="numpy")
    np.testing.assert_array_equal(idx, np.asarray(expected.indices))

    m = json.loads((tmp_path / "idx.json").read_text())  # default manifest: next to --out
    assert (m["N"], m["d"], m["dtype"], m["k"], m["metric"]) == (300, 8, "float32", 25, "l2")
    assert m["input"] == str(tmp_path / "emb.npy") and m["start"] == 0 and m["start_index"] == 0
    assert m["backend"] == "numpy" and m["algorithm"] in ("lazy", "streaming")
    assert m["h_min"] == pytest.approx(expected.hmin)
    assert m["radii"]["min"] == pytest.approx(expected.hmin) and m["radii"]["count"] == 24
    assert m["radii"]["max"] >= m["radii"]["median"] >= m["radii"]["min"]
    base = m["random_baseline"]
    assert base["seed"] == 0 and base["size"] == 25
    rows = np.sort(np.random.default_rng(0).choice(300, size=25, replace=False))
    assert base["h_min"] == pytest.approx(hminsel.hmin(emb[rows]).value)
    assert m["h_min_over_random"] == pytest.approx(m["h_min"] / base["h_min"])
    assert set(m["timings_s"]) == {"open", "load", "nonfinite_scan", "select", "random_baseline", "write"}
    assert "passes" in m["stats"] and m["hminsel_version"] == hminsel.__version__
    assert m["command"].startswith("hminsel select ") and "--k 25" in m["command"]

    lines = (tmp_path / "sub.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == idx.tolist()


def test_select_fraction_cosine_random_start_and_manifest_path(tmp_path, emb, capsys):
    code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--fraction", 0.1, "--metric",
                       "cosine", "--start", "random", "--seed", 7, "--out", tmp_path / "i.npy",
                       "--manifest", tmp_path / "m" / "run.json", "--no-progress")
    assert code == 0, err
    m = json.loads((tmp_path / "m" / "run.json").read_text())
    assert m["k"] == 30 and m["metric"] == "cosine" and m["start"] == "random"
    assert m["seed"] == 7 and m["random_baseline"]["seed"] == 7
    expected = hminsel.select(emb, 30, metric="cosine", start="random", seed=7)
    np.testing.assert_array_equal(np.load(tmp_path / "i.npy"), np.asarray(expected.indices))


def test_select_refuses_to_overwrite_before_working(tmp_path, emb, capsys):
    args = ["select", tmp_path / "emb.npy", "--k", 5, "--out", tmp_path / "i.npy", "--no-progress"]
    assert run(capsys, *args)[0] == 0
    first = (tmp_path / "i.json").read_text()
    code, out, err = run(capsys, *args, "--k", 6)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "already exist" in err and "--force" in err
    assert "i.npy and " in err and "i.json already exist" in err  # every output that is there
    assert (tmp_path / "i.json").read_text() == first
    assert run(capsys, *args, "--k", 6, "--force")[0] == 0
    assert np.load(tmp_path / "i.npy").shape == (6,)


@pytest.mark.parametrize("extra, match", [
    (["--k", "0"], "k must be"),
    (["--k", "301"], "k must be"),
    (["--fraction", "1.5"], "--fraction must be in (0, 1]; got 1.5"),
    (["--k", "3", "--start", "abc"], "--start must be a row index or 'random'"),
    (["--k", "3", "--data", "DATA"], "--data goes with --subset-out"),
    (["--k", "3", "--data", "BAD", "--subset-out", "SUB"], "holds 299 records but"),
    ([], "say how many rows to pick: --k, --fraction, or --radius"),
    (["--radius", "-1"], "--radius must be a finite distance >= 0; got -1.0"),
    (["--radius", "nan"], "--radius must be a finite distance >= 0; got nan"),
], ids=["k0", "k-too-big", "fraction", "start", "data-alone", "count-mismatch", "no-size",
        "radius-negative", "radius-nan"])
def test_select_user_errors_exit_2_in_one_line(tmp_path, emb, capsys, extra, match):
    (tmp_path / "short.jsonl").write_text("{}\n" * 299)
    subs = {"DATA": tmp_path / "data.jsonl", "BAD": tmp_path / "short.jsonl",
            "SUB": tmp_path / "s.jsonl"}
    extra = [str(subs.get(a, a)) for a in extra]
    code, out, err = run(capsys, "select", tmp_path / "emb.npy", *extra,
                         "--out", tmp_path / "i.npy", "--no-progress")
    assert code == 2
    assert match in err and err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "i.npy").exists()


def test_select_radius_stops_the_picks_and_says_so(tmp_path, emb, capsys):
    full = hminsel.select(emb, 300, backend="numpy")
    radius = float(full.radii[40])
    code, out, err = run(capsys, "select", tmp_path / "emb.npy", "--radius", radius, "--out",
                         tmp_path / "idx.npy", "--no-progress", "--backend", "numpy")
    assert code == 0, err
    idx = np.load(tmp_path / "idx.npy")
    cut = int(np.flatnonzero(full.radii[1:] <= radius)[0]) + 1
    np.testing.assert_array_equal(idx, full.indices[:cut])
    m = json.loads((tmp_path / "idx.json").read_text())
    assert m["radius"] == radius and m["k"] == cut and m["stats"]["radius_reached"]
    assert f"picked {cut} of 300 rows" in out and "stopped at --radius" in out
    assert m["random_baseline"]["size"] == cut

    code, out, err = run(capsys, "select", tmp_path / "emb.npy", "--radius", radius, "--k", 10,
                         "--out", tmp_path / "capped.npy", "--no-progress", "--backend", "numpy",
                         "--no-baseline")
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "capped.npy"), full.indices[:10])
    assert "not reached: the count (--k, --fraction" in out


def test_bad_inputs_and_debug_traceback(tmp_path, capsys):
    code, _, err = run(capsys, "hmin", tmp_path / "none.npy")
    assert code == 2 and "no such file" in err and err.count("\n") == 1
    (tmp_path / "e.csv").write_text("1,2\n")
    code, _, err = run(capsys, "hmin", tmp_path / "e.csv")
    assert code == 2 and "unknown extension '.csv'" in err and err.count("\n") == 1
    with pytest.raises(FileNotFoundError):
        main(["hmin", str(tmp_path / "none.npy"), "--debug"])
    with pytest.raises(FileNotFoundError):
        main(["--debug", "hmin", str(tmp_path / "none.npy")])


def test_npz_wrong_key_lists_keys(tmp_path, capsys):
    np.savez(tmp_path / "e.npz", a=np.zeros((3, 2)), b=np.ones((3, 2)))
    code, _, err = run(capsys, "hmin", tmp_path / "e.npz", "--key", "c")
    assert code == 2 and "available: a, b" in err


def test_select_nonfinite_rows(tmp_path, emb, capsys):
    x = emb.copy()
    x[5, 3] = np.nan
    np.save(tmp_path / "nan.npy", x)
    args = ["select", tmp_path / "nan.npy", "--k", 290, "--no-progress"]
    code, _, err = run(capsys, *args, "--out", tmp_path / "a.npy")
    assert code == 2 and "row 5" in err
    code, out, err = run(capsys, *args, "--out", tmp_path / "b.npy", "--nonfinite", "skip")
    assert code == 0, err
    assert 5 not in np.load(tmp_path / "b.npy").tolist()
    m = json.loads((tmp_path / "b.json").read_text())
    assert m["random_baseline"]["h_min"] is not None
    assert m["N"] == 300 and m["nonfinite"] == "skip"  # N counts every row, the skipped one too
    assert m["nonfinite_skipped"] == {"count": 1, "first_rows": [5]}
    assert "picked 290 of 300 rows" in out and "left out 1 row with NaN or inf (row 5)" in out


def test_select_nonfinite_skip_reports_the_rows_left_out(tmp_path, emb, capsys):
    """The manifest counts the rows --nonfinite skip left out and names the first ten; the
    summary says how many and the first; without skip (or with none to skip) nothing is said."""
    x = emb.copy()
    bad = [0, 3, 9, 40, 41, 77, 100, 101, 150, 200, 250, 299]
    x[bad, 1] = np.inf
    np.save(tmp_path / "inf.npy", x)
    code, out, err = run(capsys, "select", tmp_path / "inf.npy", "--k", 10, "--nonfinite", "skip",
                         "--out", tmp_path / "s.npy", "--no-progress")
    assert code == 0, err
    assert "left out 12 rows with NaN or inf (the first: row 0)" in out
    m = json.loads((tmp_path / "s.json").read_text())
    assert m["nonfinite_skipped"] == {"count": 12, "first_rows": bad[:10]}
    want = hminsel.select(x, 10, nonfinite="skip")
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), np.asarray(want.indices))
    code, out, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 10, "--nonfinite", "skip",
                         "--out", tmp_path / "f.npy", "--no-progress")
    assert code == 0 and "left out" not in out, err
    assert json.loads((tmp_path / "f.json").read_text())["nonfinite_skipped"] == {
        "count": 0, "first_rows": []}
    assert run(capsys, "select", tmp_path / "emb.npy", "--k", 10, "--out", tmp_path / "r.npy",
               "--no-progress")[0] == 0
    m = json.loads((tmp_path / "r.json").read_text())
    assert m["nonfinite"] == "raise" and m["nonfinite_skipped"] is None


def test_null_vectors_of_a_table_are_skipped_as_nonfinite_rows(tmp_path, emb, capsys):
    """A parquet row without an embedding (null): an error that says how to skip it, and
    with --nonfinite skip a row left out (as NaN), picked examples from the table's rows."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    vectors = emb.tolist()
    vectors[7] = None
    pq.write_table(pa.table({"id": list(range(300)), "emb": pa.array(vectors, pa.list_(pa.float32()))}),
                   tmp_path / "e.parquet")
    args = ["select", tmp_path / "e.parquet", "--k", 10, "--no-progress"]
    code, _, err = run(capsys, *args, "--out", tmp_path / "a.npy")
    assert code != 0 and "row 7 is null" in err and "--nonfinite skip" in err
    code, out, err = run(capsys, *args, "--nonfinite", "skip", "--out", tmp_path / "b.npy",
                         "--subset-out", tmp_path / "b.jsonl")
    assert code == 0, err
    x = emb.copy()
    x[7] = np.nan
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), hminsel.select(x, 10, nonfinite="skip").indices)
    assert json.loads((tmp_path / "b.json").read_text())["nonfinite_skipped"] == {"count": 1, "first_rows": [7]}
    ids = [json.loads(line)["id"] for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert ids == np.load(tmp_path / "b.npy").tolist()


def test_default_manifest_moves_aside_for_a_json_subset(tmp_path, emb, capsys):
    """--subset-out picked.json with --out picked.npy: the manifest goes to picked.manifest.json
    (as --embed names it) and the summary says so; an explicit --manifest that clashes is
    refused."""
    code, out, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 5, "--out",
                         tmp_path / "picked.npy", "--data", tmp_path / "data.jsonl",
                         "--subset-out", tmp_path / "picked.json", "--no-progress")
    assert code == 0, err
    m = json.loads((tmp_path / "picked.manifest.json").read_text())
    assert m["outputs"]["manifest"] == str(tmp_path / "picked.manifest.json")
    sub = json.loads((tmp_path / "picked.json").read_text())
    assert [r["id"] for r in sub] == np.load(tmp_path / "picked.npy").tolist()
    assert (f"wrote manifest: {shown(str(tmp_path / 'picked.manifest.json'))} (not "
            f"{tmp_path / 'picked.json'}: that is --subset-out)") in out
    code, out, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 5, "--out",
                         tmp_path / "q.npy", "--data", tmp_path / "data.jsonl", "--subset-out",
                         tmp_path / "q.jsonl", "--no-progress")
    assert code == 0 and (tmp_path / "q.json").exists() and "(not " not in out, err
    code, out, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 5, "--out",
                         tmp_path / "o.npy", "--manifest", tmp_path / "s.json", "--data",
                         tmp_path / "data.jsonl", "--subset-out", tmp_path / "s.json",
                         "--no-progress")
    assert code == 2 and out == "" and "is both the manifest and --subset-out" in err
    assert not (tmp_path / "o.npy").exists() and not (tmp_path / "s.json").exists()


def test_big_endian_npy_is_accepted(tmp_path, emb, capsys):
    np.save(tmp_path / "be.npy", emb.astype(">f4"))
    code, _, err = run(capsys, "select", tmp_path / "be.npy", "--k", 7, "--out",
                       tmp_path / "i.npy", "--no-progress")
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "i.npy"), hminsel.select(emb, 7).indices)
    code, out, _ = run(capsys, "hmin", tmp_path / "be.npy", "--json", "--no-progress")
    assert code == 0 and json.loads(out)["i"] == hminsel.hmin(emb).i


def test_remaining_type_errors_are_one_line(tmp_path, capsys):
    np.save(tmp_path / "c.npy", np.zeros((4, 2), ">c8"))
    code, _, err = run(capsys, "hmin", tmp_path / "c.npy")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err


@pytest.mark.parametrize("extra, match", [
    (["--seed", "-1"], "--seed must be a non-negative integer; got -1"),
    (["--column", "vec"], "--column (column=) does not apply to a .npy file"),
    (["--key", "a"], "--key (key=) does not apply to a .npy file"),
    (["--seed", "3", "--no-baseline"], "with a fixed --start and --no-baseline it would be ignored"),
    (["--text-fields", "a"], "--text-fields goes with --embed"),
    (["--batch-size", "0"], "--batch-size goes with --embed"),
    (["--no-embed-cache"], "--no-embed-cache goes with --embed"),
], ids=["seed", "column", "key", "seed-unused", "text-fields", "batch-size", "no-embed-cache"])
def test_flags_that_would_be_ignored_or_are_bad(tmp_path, emb, capsys, extra, match):
    code, out, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 3, *extra,
                         "--out", tmp_path / "i.npy", "--no-progress")
    assert code == 2 and out == "" and match in err and err.count("\n") == 1


def test_seed_without_random_start_seeds_only_the_baseline(tmp_path, emb, capsys):
    code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 5, "--seed", 3,
                       "--out", tmp_path / "i.npy", "--no-progress")
    assert code == 0, err
    m = json.loads((tmp_path / "i.json").read_text())
    assert m["start_index"] == 0 and m["random_baseline"]["seed"] == 3


def test_malformed_data_line_fails_before_selecting(tmp_path, emb, capsys, monkeypatch):
    lines = [json.dumps({"id": i}) for i in range(300)]
    lines[299] = "{not json"  # never picked by k = 3 from row 0, yet still refused
    (tmp_path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(hminsel, "select", lambda *a, **k: pytest.fail("selected anyway"))
    code, out, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 3, "--out",
                         tmp_path / "i.npy", "--data", tmp_path / "bad.jsonl", "--subset-out",
                         tmp_path / "s.jsonl", "--no-progress")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "bad.jsonl: line 300 is not valid JSON" in err
    assert not (tmp_path / "i.npy").exists() and not (tmp_path / "s.jsonl").exists()


def test_unavailable_backend_and_unexpected_errors_are_one_line(tmp_path, emb, capsys, monkeypatch):
    monkeypatch.setattr(hminsel.backends, "why_not",
                        lambda name: "no CUDA device" if name == "triton" else None)
    code, _, err = run(capsys, "hmin", tmp_path / "emb.npy", "--backend", "triton")
    assert code == 2 and err.count("\n") == 1 and "no CUDA device" in err

    def boom(*args, **kwargs):
        raise KeyError("bug")
    monkeypatch.setattr(hminsel, "hmin", boom)
    code, _, err = run(capsys, "hmin", tmp_path / "emb.npy")
    assert code == 1 and err.count("\n") == 1 and "internal error: KeyError" in err
    assert "--debug" in err and "Traceback" not in err
    with pytest.raises(KeyError):
        main(["hmin", str(tmp_path / "emb.npy"), "--debug"])


def test_manifest_records_the_seed_in_use(tmp_path, emb, capsys):
    assert run(capsys, "select", tmp_path / "emb.npy", "--k", 5, "--out", tmp_path / "i.npy",
               "--no-progress")[0] == 0
    m = json.loads((tmp_path / "i.json").read_text())
    assert m["seed"] == 0 == m["random_baseline"]["seed"]  # the default seed, as used
    assert run(capsys, "select", tmp_path / "emb.npy", "--k", 5, "--out", tmp_path / "j.npy",
               "--no-baseline", "--no-progress")[0] == 0
    assert json.loads((tmp_path / "j.json").read_text())["seed"] is None  # nothing random ran


@pytest.mark.parametrize("outputs", [
    ["--out", "o.npy", "--data", "DATA", "--subset-out", "DATA"],         # the data file replaced
    ["--out", "data.npy", "--data", "DATA", "--subset-out", "s.jsonl", "--manifest", "DATA"],
    ["--out", "o.npy", "--data", "LINK", "--subset-out", "DATA"],          # the same file by a link
], ids=["subset-is-data", "manifest-is-data", "symlink"])
def test_no_output_may_be_an_input_even_with_force(tmp_path, emb, capsys, outputs):
    data = tmp_path / "data.jsonl"
    os.symlink(data, tmp_path / "link.jsonl")
    before = data.read_bytes()
    subs = {"DATA": data, "LINK": tmp_path / "link.jsonl"}
    args = [str(subs.get(a, tmp_path / a if a.endswith((".npy", ".jsonl")) else a)) for a in outputs]
    code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 5, *args, "--force",
                       "--no-progress")
    assert code == 2 and "must be different files" in err
    assert data.read_bytes() == before


def test_out_must_be_npy(tmp_path, emb, capsys):
    code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 5, "--out", tmp_path / "p.json",
                       "--no-progress")
    assert code == 2 and "--out must end in .npy" in err and not (tmp_path / "p.json").exists()


def test_unwritable_output_folder_fails_before_the_work(tmp_path, emb, capsys, monkeypatch):
    (tmp_path / "afile").write_text("")
    code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 5, "--out",
                       tmp_path / "afile" / "i.npy", "--no-progress")
    assert code == 2 and "is not a directory" in err and str(tmp_path / "afile" / "i.npy") in err
    import hminsel.api
    monkeypatch.setattr(hminsel, "select", lambda *a, **k: pytest.fail("selected before failing"))
    code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 5, "--out", tmp_path / "ok.npy",
                       "--manifest", "/proc/hminsel-test/m.json", "--no-progress")
    assert code == 2 and "cannot write /proc/hminsel-test/m.json" in err and err.count("\n") == 1
    assert not (tmp_path / "ok.npy").exists()


def test_bad_npz_member_and_non_utf8_data_are_user_errors(tmp_path, emb, capsys):
    import zipfile
    with zipfile.ZipFile(tmp_path / "z.npz", "w") as z:
        z.writestr("emb.npy", "garbage")
    code, _, err = run(capsys, "hmin", tmp_path / "z.npz")
    assert code == 2 and "member 'emb' is not a .npy array" in err
    (tmp_path / "bad.jsonl").write_bytes(b'{"a": "\xe9"}\n' * 300)
    code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 5, "--out", tmp_path / "i.npy",
                       "--data", tmp_path / "bad.jsonl", "--subset-out", tmp_path / "s.jsonl")
    assert code == 2 and "bad.jsonl: not UTF-8 text" in err


def test_default_manifest_moves_aside_only_for_a_json_subset(tmp_path):
    from hminsel.cli.report import default_manifest
    out = str(tmp_path / "picked.npy")
    assert default_manifest(out, None) == (str(tmp_path / "picked.json"), None)
    assert default_manifest(out, str(tmp_path / "picked.jsonl")) == (str(tmp_path / "picked.json"), None)
    path, note = default_manifest(out, str(tmp_path / "picked.json"))
    assert path == str(tmp_path / "picked.manifest.json") and "that is --subset-out" in note


def test_usage_mistakes_are_one_line(capsys, tmp_path):
    """argparse's errors as one line (not its usage first), --k's value explained, and the
    inputs' mistakes before an existing output's."""
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((20, 3), np.float32))
    for args, says in [(["--k", "0.5"], "a share of the rows is --fraction 0.5"),
                       (["--k", "1.0"], "a share of the rows is --fraction 1.0"),
                       (["--k", "20.0"], "got '20.0' (write 20)"),
                       (["--k", "abc"], "expected a whole number of rows; got 'abc'"),
                       (["--k", "3", "--fraction", "0.5"], "not allowed with argument --k")]:
        code, out, err = run(capsys, "select", tmp_path / "x.npy", "--out", tmp_path / "o.npy", *args)
        assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err
        assert "usage:" not in err and "(see hminsel select --help)" in err
    code, out, err = run(capsys, "select", tmp_path / "x.npy", "--k", "1e1", "--out", tmp_path / "o.npy",
                         "--no-progress", "--no-baseline")
    assert code == 0 and len(np.load(tmp_path / "o.npy")) == 10, err
    code, out, err = run(capsys, "select", tmp_path / "x.npy", "--k", 50, "--out", tmp_path / "o.npy")
    assert code == 2 and "k must be in [1, 20] (the 20 rows of x); got 50" in err, err  # not "exists"


def test_k_past_the_finite_rows_is_bounded_by_them(capsys, tmp_path):
    """With --nonfinite skip the bound on --k is the finite rows, known once x is read."""
    x = np.random.default_rng(0).random((30, 3), np.float32)
    x[[4, 9]] = np.nan
    np.save(tmp_path / "x.npy", x)
    code, out, err = run(capsys, "select", tmp_path / "x.npy", "--k", 29, "--nonfinite", "skip",
                         "--out", tmp_path / "o.npy")
    assert code == 2 and "[1, 28] (28 finite rows)" in err, err


def _select_to(tmp_path, capsys, k, *extra):
    return run(capsys, "select", tmp_path / "emb.npy", "--k", k, "--out", tmp_path / "idx.npy",
               "--data", tmp_path / "data.jsonl", "--subset-out", tmp_path / "sub.jsonl",
               "--no-progress", *extra)


@pytest.mark.parametrize("stop", [KeyboardInterrupt, OSError])
def test_a_run_stopped_while_writing_replaces_no_output(tmp_path, emb, capsys, monkeypatch, stop):
    """The subset is written first; Ctrl-C or a full disk at the indices leaves the earlier
    run's set whole (it used to leave the new subset beside the old indices and manifest)."""
    assert _select_to(tmp_path, capsys, 20)[0] == 0
    before = {p: (tmp_path / p).read_bytes() for p in ("idx.npy", "idx.json", "sub.jsonl")}

    def fail(*args, **kwargs):
        raise stop("no space left on device" if stop is OSError else "")
    monkeypatch.setattr("hminsel.cli.main.write_npy_atomic", fail)
    code, _, err = _select_to(tmp_path, capsys, 5, "--force")
    assert code == (130 if stop is KeyboardInterrupt else 2), err
    assert {p: (tmp_path / p).read_bytes() for p in before} == before
    assert sorted(os.listdir(tmp_path)) == ["data.jsonl", "emb.npy", *sorted(before)]


def test_sigterm_ends_a_run_as_ctrl_c_does(tmp_path, emb, capsys, monkeypatch):
    import signal
    import time

    def terminated(*args, **kwargs):  # as a batch scheduler's SIGTERM, mid-selection
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler raises before this ends
        raise AssertionError("SIGTERM did not stop the run")
    before = signal.getsignal(signal.SIGTERM)
    if before is not signal.SIG_DFL:  # a host's handler, which the command leaves alone
        pytest.skip(f"this test process handles SIGTERM itself ({before!r})")
    monkeypatch.setattr("hminsel.cli.groups.run_select", terminated)
    code, _, err = _select_to(tmp_path, capsys, 5)
    assert code == 128 + signal.SIGTERM and "hminsel: terminated (SIGTERM)" in err
    assert sorted(os.listdir(tmp_path)) == ["data.jsonl", "emb.npy"]
    assert signal.getsignal(signal.SIGTERM) is before  # the handler is the command's alone
