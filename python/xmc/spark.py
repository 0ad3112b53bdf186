"""Catalogue-scale prediction on Spark: `mapInArrow` over the xmc package. Each Python worker
loads the model folder once and predicts Arrow batches in Rust; no per-row Python.

From PySpark:

    from xmc.spark import predict_dataframe
    out = predict_dataframe(products_df, "models/my-xr", top_k=5)   # id, path, score, labels, scores, error

As a job (the model folder must be readable at the same path on every executor):

    spark-submit --master local[2] python/xmc/spark.py \\
        --model models/my-xr --input products.parquet --output predictions/

The input's columns are mapped by the model's dataset descriptor, as `xmc predict` maps them;
the output has one row per input row.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Iterator

OUTPUT_SCHEMA = "id string, path string, score float, labels array<string>, scores array<float>, error string"

_MODELS: dict = {}


def _model(path: str, dataset: str | None):
    """The model of this worker process, loaded on first use (Python workers are reused)."""
    key = (path, dataset)
    if key not in _MODELS:
        import xmc

        _MODELS[key] = xmc.Model.load(path, dataset=dataset)
    return _MODELS[key]


def predict_dataframe(df, model: str, top_k: int = 5, beam: int | None = None, skip_bad_rows: bool = False, dataset: str | None = None, threads_per_task: int = 1):
    """`df` predicted with the model folder `model`: a DataFrame of OUTPUT_SCHEMA, a row per input row.
    `threads_per_task`: prediction threads inside each Spark task (Spark runs tasks in parallel)."""
    model = str(model)
    dataset = None if dataset is None else str(dataset)

    def predict_batches(batches: Iterator) -> Iterator:
        # Spark's parallelism is its tasks: keep each worker's Rust pool to `threads_per_task`.
        os.environ.setdefault("RAYON_NUM_THREADS", str(threads_per_task))
        os.environ.setdefault("XMC_PREDICT_THREADS", str(threads_per_task))
        m = _model(model, dataset)
        for batch in batches:
            if batch.num_rows == 0:
                continue
            yield from m.predict_arrow(batch, top_k=top_k, beam=beam, skip_bad_rows=skip_bad_rows).to_batches()

    return df.mapInArrow(predict_batches, OUTPUT_SCHEMA)


def _read(spark, path: str, fmt: str | None):
    fmt = fmt or path.rstrip("/").rsplit(".", 1)[-1].lower()
    if fmt in ("parquet", "pq"):
        return spark.read.parquet(path)
    if fmt == "csv":
        return spark.read.csv(path, header=True, multiLine=True, escape='"', inferSchema=False)
    if fmt in ("jsonl", "json", "ndjson"):
        return spark.read.json(path)
    raise SystemExit(f"{path}: cannot tell the input format; pass --input-format csv, jsonl or parquet")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Predict a product table with an xmc model folder on Spark.")
    parser.add_argument("--model", required=True, help="model folder (readable on every executor)")
    parser.add_argument("--input", required=True, help="input path (local, hdfs://, s3a://): Parquet, CSV or JSON lines")
    parser.add_argument("--input-format", choices=["parquet", "csv", "jsonl"])
    parser.add_argument("--output", required=True, help="output folder (Parquet)")
    parser.add_argument("--dataset", help="dataset descriptor (default: the model's own)")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--beam", type=int)
    parser.add_argument("--skip-bad-rows", action="store_true", help="mark bad rows in `error` instead of failing")
    parser.add_argument("--threads-per-task", type=int, default=1)
    parser.add_argument("--master", help="Spark master when not set by spark-submit, e.g. local[2]")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="Spark settings, e.g. spark.sql.files.maxPartitionBytes=16m")
    args = parser.parse_args(argv)

    from pyspark.sql import SparkSession

    # Local runs: the workers use this interpreter (the one with xmc installed) unless told otherwise.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    builder = SparkSession.builder.appName("xmc-predict")
    if args.master:
        builder = builder.master(args.master)
    for setting in args.conf:
        key, _, value = setting.partition("=")
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    df = _read(spark, args.input, args.input_format)
    out = predict_dataframe(df, args.model, args.top_k, args.beam, args.skip_bad_rows, args.dataset, args.threads_per_task)
    out.write.mode("overwrite").parquet(args.output)
    spark.stop()


if __name__ == "__main__":
    main()
