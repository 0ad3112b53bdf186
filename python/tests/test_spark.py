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

    # The job's command line writes the same as a Parquet folder.
    out_dir = tmp_path / "spark-out"
    main(["--model", str(model_dir), "--input", str(products), "--output", str(out_dir), "--top-k", "3"])
    written = pq.read_table(out_dir).to_pylist()
    assert sorted(r["id"] for r in written) == sorted(cli)
    assert all(r["path"] == cli[r["id"]]["path"] for r in written)

