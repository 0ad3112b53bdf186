"""Prediction on Spark (local mode) equals `xmc predict` on the same file."""

import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pandas as pd
import pytest

from conftest import SAMPLE, run_cli

pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed: the Spark test did NOT run")
if shutil.which("java") is None:
    pytest.skip("no Java runtime: the Spark test did NOT run (install openjdk-17-jre-headless)", allow_module_level=True)


@pytest.fixture(scope="module")
def spark():
    import os
    import sys

    from pyspark.sql import SparkSession

    # Workers run this interpreter, the one with the xmc wheel installed.
    os.environ["PYSPARK_PYTHON"] = sys.executable
    session = (
        SparkSession.builder.master("local[2]")
        .appName("xmc-test")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "2")
        .getOrCreate()
    )
    yield session
    session.stop()


def test_spark_answers_the_messy_products_as_the_command_line(model_dir, tmp_path, spark):
    """The fourth front door: Spark cleans and renders the products as `xmc predict` does."""
    from conftest import MESSY_CSV, assert_same_answers
    from xmc.spark import predict_dataframe

    products = tmp_path / "messy.csv"
    products.write_text(MESSY_CSV)
    cli_out = tmp_path / "cli.jsonl"
    run_cli("predict", "--model", str(model_dir), "--input", str(products), "--output", str(cli_out), "--top-k", "3")
    cli = {r["id"]: ([p for p, _ in r["top_k"]], [s for _, s in r["top_k"]]) for r in map(json.loads, cli_out.read_text().splitlines())}
    frame = pd.read_csv(products, dtype=str, keep_default_na=False)
    rows = predict_dataframe(spark.createDataFrame(frame), str(model_dir), top_k=3).collect()
    assert_same_answers({r["id"]: (list(r["labels"]), list(r["scores"])) for r in rows}, cli, "spark")


def test_the_job_refuses_an_output_it_did_not_make_and_out_of_range_options(model_dir, tmp_path, capsys):
    """Checked before Spark starts: nothing is deleted, nothing is started."""
    from xmc.spark import main, output_mode

    theirs = tmp_path / "someone-elses"
    theirs.mkdir()
    (theirs / "keep.txt").write_text("precious")
    job = ["--model", str(model_dir), "--input", "unused.parquet", "--output", str(theirs)]
    with pytest.raises(SystemExit, match="already exists and is not an unfinished run.*--overwrite"):
        main(job)
    assert (theirs / "keep.txt").read_text() == "precious"
    assert output_mode(str(theirs), overwrite=True) == "overwrite"
    assert output_mode(str(tmp_path / "new"), overwrite=False) == "errorifexists"
    for option, value in [("--top-k", "0"), ("--top-k", "1000000"), ("--beam", "-1"), ("--threads-per-task", "0")]:
        with pytest.raises(SystemExit) as exit_:
            main(["--model", str(model_dir), "--input", "x.parquet", "--output", str(tmp_path / "o"), f"{option}={value}"])
        assert exit_.value.code == 2
        assert option in capsys.readouterr().err


def test_spark_predictions_equal_the_command_line(model_dir, tmp_path, spark):
    from xmc.spark import main, predict_dataframe

    # The same Parquet file for both, so that no CSV dialect differs.
    products = tmp_path / "products.parquet"
    pq.write_table(pa.Table.from_pandas(pd.read_csv(SAMPLE, dtype=str, keep_default_na=False), preserve_index=False), products)
    cli_out = tmp_path / "cli.jsonl"
    run_cli("predict", "--model", str(model_dir), "--input", str(products), "--output", str(cli_out), "--top-k", "3")
    cli = {row["id"]: row for row in map(json.loads, cli_out.read_text().splitlines())}

    df = spark.read.parquet(str(products)).repartition(3)
    rows = predict_dataframe(df, str(model_dir), top_k=3).collect()
    assert len(rows) == len(cli)
    for row in rows:
        want = cli[row["id"]]
        assert row["path"] == want["path"]
        assert list(row["labels"]) == [p for p, _ in want["top_k"]]
        assert all(abs(a - b) < 1e-5 for a, b in zip(row["scores"], [s for _, s in want["top_k"]]))
        assert row["error"] is None

    # The job's command line writes the same as a Parquet folder. The folder holds what an
    # interrupted run left (Spark's _temporary, no _SUCCESS): the rerun starts over and says so.
    out_dir = tmp_path / "spark-out"
    (out_dir / "_temporary" / "0").mkdir(parents=True)
    (out_dir / "_temporary" / "0" / "part-00000.parquet").write_bytes(b"half")
    job = ["--model", str(model_dir), "--input", str(products), "--output", str(out_dir), "--top-k", "3"]
    main(job)
    written = pq.read_table(out_dir).to_pylist()
    assert sorted(r["id"] for r in written) == sorted(cli)
    assert all(r["path"] == cli[r["id"]]["path"] for r in written)
    # Its finished output is not replaced by a rerun unless asked (refused before Spark starts).
    with pytest.raises(SystemExit, match="finished output of an earlier run.*--overwrite"):
        main(job)
    assert (out_dir / "_SUCCESS").exists()

