"""Where an xmc run and LinearSVC differ on rare labels: per bucket of training records, the test
records each put into the bucket's labels (right and wrong) and the sum of per-label F1, and the
labels each predicts that have no test record (each a zero in xmc-eval's macro average, which runs
over the labels in the truth or the predictions, as scikit-learn's does).

    python rare_predictions.py experiments/<run> <peers dir>

`<run>` is a finished experiment (its data and predict stages); `<peers dir>` the folder of
`cargo xtask bench peers --dataset <d> --ours experiments/<run> --tools linearsvc` (the test split),
whose peers.json holds LinearSVC's ranking. Needs pyarrow (the Python package's virtualenv has it).
"""
import collections
import json
import sys

import pyarrow.parquet as pq

BUCKETS = [(0, 5), (6, 25), (26, 100), (101, None)]


def main():
    run, peers = sys.argv[1], sys.argv[2]
    records = pq.read_table(f"{run}/data/records.parquet", columns=["id", "split", "label"]).to_pylist()
    labels = json.load(open(f"{run}/data/labels.json", encoding="utf-8"))["labels"]
    path_id = {l["path"]: l["id"] for l in labels}
    train_count = {l["id"]: l["train_count"] for l in labels}
    test = [r for r in records if r["split"] == "test"]
    truth = {r["id"]: r["label"] for r in test}
    ours = {}
    with open(f"{run}/predict/predictions.jsonl", encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            ours[row["id"]] = path_id.get(row["path"], -1)
    ranked = json.load(open(f"{peers}/peers.json"))["linearsvc"]["ranked"]
    assert len(ranked) == len(test), "peers.json is not of this run's test split"
    svc = {r["id"]: ranks[0] for r, ranks in zip(test, ranked)}

    def counts(pred):
        c = collections.defaultdict(lambda: [0, 0, 0])  # tp, fp, fn
        for i, y in truth.items():
            p = pred[i]
            if p == y:
                c[y][0] += 1
            else:
                c[p][1] += 1
                c[y][2] += 1
        return c

    present = set(truth.values())
    print("| training records | labels | xmc: right / put there | LinearSVC: right / put there | xmc sum of F1 | LinearSVC sum of F1 |")
    print("|---|---|---|---|---|---|")
    cx, cs = counts(ours), counts(svc)
    every = set(cx) | set(cs)
    for lo, hi in BUCKETS:
        bucket = [l for l in every if lo <= train_count.get(l, 0) and (hi is None or train_count.get(l, 0) <= hi)]
        f1 = lambda c: sum(2 * c[l][0] / (2 * c[l][0] + c[l][1] + c[l][2]) for l in bucket if c[l][0])
        tp = lambda c: sum(c[l][0] for l in bucket)
        put = lambda c: sum(c[l][0] + c[l][1] for l in bucket)
        name = f"{lo}-{hi}" if hi is not None else f"over {lo - 1}"
        print(f"| {name} | {len(bucket)} | {tp(cx)} / {put(cx)} | {tp(cs)} / {put(cs)} | {f1(cx):.2f} | {f1(cs):.2f} |")
    absent = lambda c: sum(1 for l, v in c.items() if l not in present and v[1] > 0)
    print(f"\nlabels predicted that have no test record: xmc {absent(cx)}, LinearSVC {absent(cs)}")


if __name__ == "__main__":
    main()
