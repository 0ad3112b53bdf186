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

The output folder must not exist, or be what an interrupted run of this job left (Spark's
`_temporary` folder and no `_SUCCESS`): Spark retries failed tasks inside a job, but a job that
stopped does not resume; its rerun starts over and says so. `--overwrite` replaces a finished
output, or anything else at that path, on purpose.
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


def _count(name: str, low: int, high: int):
    """An argparse type: a whole number in [low, high], the error naming the option."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name}: `{text}` is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{name} must be between {low} and {high}, not {value}")
        return value

    return parse


def output_mode(path: str, overwrite: bool) -> str:
    """How to write `path`: "errorifexists" for a new path; "overwrite" when asked, or when the
    path holds only what an interrupted run of this job left (Spark's `_temporary`, no
    `_SUCCESS`). Anything else at the path is refused, naming it and the flag. Only local paths
    are inspected; a remote one is written with "errorifexists" unless `overwrite`."""
    if overwrite:
        return "overwrite"
    if "://" in path and not path.startswith("file://"):
        return "errorifexists"
    local = path[len("file://"):] if path.startswith("file://") else path
    if not os.path.exists(local):
        return "errorifexists"
    if os.path.isdir(local):
        entries = set(os.listdir(local))
        unfinished = "_temporary" in entries and "_SUCCESS" not in entries
        if unfinished and all(e == "_temporary" or e.startswith((".", "part-")) for e in entries):
            print(f"{path}: an earlier run of this job did not finish (no _SUCCESS); Spark jobs do not resume, so it starts over", file=sys.stderr)
            return "overwrite"
        if "_SUCCESS" in entries:
            raise SystemExit(f"{path} holds the finished output of an earlier run; pass --overwrite to replace it, or choose another --output")
    raise SystemExit(f"{path} already exists and is not an unfinished run of this job; pass --overwrite to replace it, or choose another --output")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Predict a product table with an xmc model folder on Spark.")
    parser.add_argument("--model", required=True, help="model folder (readable on every executor)")
    parser.add_argument("--input", required=True, help="input path (local, hdfs://, s3a://): Parquet, CSV or JSON lines")
    parser.add_argument("--input-format", choices=["parquet", "csv", "jsonl"])
    parser.add_argument("--output", required=True, help="output folder (Parquet)")
    parser.add_argument("--dataset", help="dataset descriptor (default: the model's own)")
    parser.add_argument("--overwrite", action="store_true", help="replace --output if it exists (by default an existing output is refused, unless it is an unfinished run of this job)")
    parser.add_argument("--top-k", type=_count("--top-k", 1, 1000), default=5, help="labels per row, 1 to 1000")
    parser.add_argument("--beam", type=_count("--beam", 1, 1000), help="beam width, 1 to 1000 (default: the model's)")
    parser.add_argument("--skip-bad-rows", action="store_true", help="mark bad rows in `error` instead of failing")
    parser.add_argument("--threads-per-task", type=_count("--threads-per-task", 1, 1024), default=1, help="prediction threads in each Spark task, 1 to 1024")
    parser.add_argument("--master", help="Spark master when not set by spark-submit, e.g. local[2]")
    parser.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="Spark settings, e.g. spark.sql.files.maxPartitionBytes=16m")
    args = parser.parse_args(argv)
    # Decided before Spark starts: a refused output costs nothing.
    mode = output_mode(args.output, args.overwrite)

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
    out.write.mode(mode).parquet(args.output)
    spark.stop()


if __name__ == "__main__":
    main()
