"""Makes the bundled sample datasets/amazon-uk-sample/products.csv from the full Amazon UK file.

Usage: python3 datasets/make_sample.py [path/to/shared/datasets]
A seeded uniform sample of 2,500 rows, kept in file order, written in the source's own format
(RFC 4180 quoting, CRLF record ends). Deterministic: rerunning gives the same bytes.
"""
import csv
import os
import random
import sys

ROWS = 2500
SEED = 2026

here = os.path.dirname(os.path.abspath(__file__))
shared = sys.argv[1] if len(sys.argv) > 1 else os.environ.get(
    "XMC_DATA_DIR", os.path.join(here, "..", "..", "shared", "datasets"))
source = os.path.join(shared, "amazon-uk", "products.csv")
with open(source, encoding="utf-8", newline="") as f:
    reader = csv.reader(f)
    header = next(reader)
    rows = list(reader)
keep = sorted(random.Random(SEED).sample(range(len(rows)), ROWS))
out = os.path.join(here, "amazon-uk-sample", "products.csv")
with open(out, "w", encoding="utf-8", newline="") as f:
    writer = csv.writer(f, lineterminator="\r\n")
    writer.writerow(header)
    for i in keep:
        writer.writerow(rows[i])
print(f"wrote {ROWS} of {len(rows)} rows to {out}")
