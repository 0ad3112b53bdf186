"""The Python package against the command line: same model folder, same predictions."""

import json

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import xmc
from conftest import SAMPLE, run_cli


def test_load_and_predict_titles(model_dir):
    m = xmc.Model.load(model_dir)
    assert m.method == "xr"
    assert len(m.labels) > 100
    assert m.temperature > 0
    out = m.predict(["Hornby 00 gauge passenger coach", "Lego City fire station"], top_k=3)
    assert len(out) == 2
    for ranked in out:
        assert len(ranked) == 3
        paths = [p for p, _ in ranked]
        scores = [s for _, s in ranked]
        assert all(p in m.labels for p in paths)
        assert scores == sorted(scores, reverse=True)
        # Confidences are normalised over the beam's pool: below 1 even for the best.
        assert 0 < scores[0] < 1 and sum(scores) <= 1 + 1e-6
    assert "Train" in out[0][0][0] or "Rail" in out[0][0][0]


def test_predict_frame_matches_the_command_line(model_dir, tmp_path):
    cli_out = tmp_path / "cli.jsonl"
    run_cli("predict", "--model", str(model_dir), "--input", str(SAMPLE), "--output", str(cli_out), "--top-k", "4")
    cli = [json.loads(line) for line in cli_out.read_text().splitlines()]
    m = xmc.Model.load(model_dir)
    frame = pd.read_csv(SAMPLE, dtype=str, keep_default_na=False)
    for df in (frame, pl.from_pandas(frame), pa.Table.from_pandas(frame, preserve_index=False)):
        out = m.predict_frame(df, top_k=4)
        assert type(out).__module__.split(".")[0] == type(df).__module__.split(".")[0]
        table = out if isinstance(out, pa.Table) else pa.Table.from_pandas(out) if isinstance(out, pd.DataFrame) else out.to_arrow()
        rows = table.to_pylist()
        assert len(rows) == len(cli) == len(frame)
        for row, want in zip(rows, cli):
            assert row["id"] == want["id"]
            assert row["path"] == want["path"]
            assert list(row["labels"]) == [p for p, _ in want["top_k"]]
            assert all(abs(a - b) < 1e-5 for a, b in zip(row["scores"], [s for _, s in want["top_k"]]))
            assert row["error"] is None


def test_bad_rows_raise_or_are_marked(model_dir):
    m = xmc.Model.load(model_dir)
    bad = pd.DataFrame({"id": ["a", "b", "c"], "title": ["Hornby coach", "", "Brio train"], "price": ["3", "4", "x"]})
    with pytest.raises(xmc.XmcError, match="row 2: empty title"):
        m.predict_frame(bad)
    out = m.predict_frame(bad, skip_bad_rows=True)
    assert list(out["id"]) == ["a", "b", "c"]
    assert out["error"].isna().tolist() == [True, False, False]
    assert "bad price" in out["error"][2]
    assert out["path"][0] in m.labels and pd.isna(out["path"][1])


def test_errors_carry_the_rust_message(model_dir, tmp_path):
    m = xmc.Model.load(model_dir)
    with pytest.raises(xmc.XmcError, match="no title column `title`"):
        m.predict_frame(pd.DataFrame({"name": ["Hornby coach"]}))
    with pytest.raises(xmc.XmcError, match="not a model folder"):
        xmc.Model.load(tmp_path / "missing")
    for keywords, says in [
        ({"top_k": 0}, "top_k must be between 1 and 1000, not 0"),
        ({"top_k": -3}, "top_k must be between 1 and 1000, not -3"),
        ({"top_k": 10**12}, "top_k must be between 1 and 1000"),
        ({"beam": 0}, "beam must be between 1 and 1000, not 0"),
        ({"beam": 10**6}, "beam must be between 1 and 1000"),
        ({"top_k": 10**30}, "top_k must be between 1 and 1000"),
        ({"top_k": "3"}, "top_k must be a whole number"),
    ]:
        with pytest.raises(xmc.XmcError, match=says):
            m.predict(["Hornby coach"], **keywords)
        with pytest.raises(xmc.XmcError, match=says):
            m.predict_frame(pd.DataFrame({"title": ["Hornby coach"]}), **keywords)
    # The Rust side checks the same ranges for callers of the extension module itself.
    with pytest.raises(xmc.XmcError, match="top_k must be between 1 and 1000, not 0"):
        m._inner.predict(["Hornby coach"], 0, None)
    with pytest.raises(TypeError):
        m.predict("Hornby coach")
    with pytest.raises(xmc.XmcError, match="already exists"):
        xmc.train(tmp_path / "none.toml", model_dir)
    # No config is the recommended recipe, which trains on the catalogue the caller names.
    with pytest.raises(xmc.XmcError, match="--dataset"):
        xmc.train(None, tmp_path / "recommended")
    assert not (tmp_path / "recommended").exists()


def test_a_model_from_the_command_line_loads_in_python(model_dir, tmp_path):
    """`xmc train` and `xmc.train` run the same code: the CLI's folder predicts the same."""
    config = next((model_dir.parent.parent).glob("work*/xr.toml"))
    cli_model = tmp_path / "cli_model"
    run_cli("train", "--config", str(config), "--output", str(cli_model))
    a, b = xmc.Model.load(model_dir), xmc.Model.load(cli_model)
    titles = ["Hornby 00 gauge passenger coach", "Lego City fire station", "Star Wars figure"]
    assert a.predict(titles, top_k=3) == b.predict(titles, top_k=3)


def test_every_front_door_gives_one_answer(model_dir, tmp_path):
    """The same products through `xmc predict`, `xmc serve` and Python get the same answer:
    one path cleans and renders a record, one turns label ids into rows (Spark: test_spark.py)."""
    import re
    import subprocess
    import urllib.request

    from conftest import MESSY_CSV, MESSY_JSON, assert_same_answers, xmc_cli

    products = tmp_path / "messy.csv"
    products.write_text(MESSY_CSV)
    cli_out = tmp_path / "cli.jsonl"
    run_cli("predict", "--model", str(model_dir), "--input", str(products), "--output", str(cli_out), "--top-k", "3")
    cli = {r["id"]: ([p for p, _ in r["top_k"]], [s for _, s in r["top_k"]]) for r in map(json.loads, cli_out.read_text().splitlines())}
    assert len(cli) == 3

    frame = pd.read_csv(products, dtype=str, keep_default_na=False)
    rows = pa.Table.from_pandas(xmc.Model.load(model_dir).predict_frame(frame, top_k=3)).to_pylist()
    assert_same_answers({r["id"]: (list(r["labels"]), list(r["scores"])) for r in rows}, cli, "python")

    server = subprocess.Popen([*xmc_cli(), "serve", "--model", str(model_dir), "--port", "0"], stderr=subprocess.PIPE, text=True)
    try:
        address = None
        for line in server.stderr:
            found = re.search(r"on (http://[0-9.:]+)", line)
            if found:
                address = found.group(1)
                break
        assert address, "the server did not say where it listens"
        body = json.dumps({"records": MESSY_JSON, "top_k": 3}).encode()
        request = urllib.request.Request(address + "/predict", data=body, headers={"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
    finally:
        server.terminate()
        server.wait(timeout=60)
    served = {p["id"]: ([t["path"] for t in p["top_k"]], [t["score"] for t in p["top_k"]]) for p in answer["predictions"]}
    assert_same_answers(served, cli, "server")


def test_a_rust_panic_is_an_xmc_error_and_the_interpreter_goes_on(model_dir):
    """A panic (a bug) inside the boundary every exported function uses reaches Python as
    xmc.XmcError, which `except Exception` catches, not pyo3's PanicException (a BaseException)."""
    from xmc import _xmc

    try:
        _xmc._panic_at_the_boundary("boom at the boundary")
    except Exception as e:  # noqa: BLE001 - the point: an ordinary handler catches it
        assert isinstance(e, xmc.XmcError), type(e)
        assert "internal error" in str(e) and "boom at the boundary" in str(e)
    else:
        raise AssertionError("no exception")
    assert xmc.Model.load(model_dir).predict(["Hornby coach"], top_k=1)[0]


def test_a_folder_with_a_number_past_its_files_is_an_xmc_error(model_dir, tmp_path):
    """A count in a model folder that would size a huge allocation is refused by name, and the
    interpreter goes on (an allocation failure would kill it)."""
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    tree = json.loads((broken / "tree.json").read_text())
    tree["n_labels"] = 10**14
    (broken / "tree.json").write_text(json.dumps(tree))
    with pytest.raises(xmc.XmcError, match="tree.json.*n_labels|n_labels.*tree.json"):
        xmc.Model.load(broken)
    assert xmc.Model.load(model_dir).predict(["Hornby coach"], top_k=1)[0]


def _fake_onnxruntime(root, version):
    """An installed-looking `onnxruntime` (package folder with capi/ and its dist-info) under root."""
    package = root / "onnxruntime"
    (package / "capi").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "capi" / "libonnxruntime.so.9.9.9").write_bytes(b"")
    info = root / f"onnxruntime-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: onnxruntime\nVersion: {version}\n")
    return package / "capi" / "libonnxruntime.so.9.9.9"


@pytest.mark.parametrize("version, found", [("1.31.1", True), ("1.16.3", False)])
def test_an_installed_onnxruntime_library_is_offered_to_the_fast_path(tmp_path, monkeypatch, version, found):
    library = _fake_onnxruntime(tmp_path, version)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    importlib.invalidate_caches()
    got = xmc._onnxruntime_library()
    # A version older than the C API the fast path asks for is not offered (the encoder then
    # looks in models/ or runs in burn).
    assert got == (str(library) if found else None)
