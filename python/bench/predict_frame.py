"""The Python side of `cargo xtask bench python`: read a CSV into pandas, predict it with
`Model.predict_frame`, write Parquet, and print the timings as JSON."""

import argparse
import json
import time

import pandas as pd

import xmc

parser = argparse.ArgumentParser()
parser.add_argument("--model", required=True)
parser.add_argument("--dataset", required=True)
parser.add_argument("--input", required=True)
parser.add_argument("--output", required=True)
parser.add_argument("--top-k", type=int, default=5)
args = parser.parse_args()

started = time.perf_counter()
model = xmc.Model.load(args.model, dataset=args.dataset)
loaded = time.perf_counter()
frame = pd.read_csv(args.input, dtype=str, keep_default_na=False)
read = time.perf_counter()
out = model.predict_frame(frame, top_k=args.top_k)
predicted = time.perf_counter()
out.to_parquet(args.output)
done = time.perf_counter()
print(json.dumps({
    "records": len(out),
    "load_s": loaded - started,
    "read_s": read - loaded,
    "predict_s": predicted - read,
    "write_s": done - predicted,
    "total_s": done - started,
}))
