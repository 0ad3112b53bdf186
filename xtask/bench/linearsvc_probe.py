"""Probes of LinearSVC on the split `cargo xtask bench peers --split valid` writes (train.tsv and
the validation records as test.tsv in its peers folder): what separates it from xmc's linear
solver run flat, and what more training records would give it. Accuracy and tail accuracy (labels
with <= 25 training records) of the top label, in %.

    python linearsvc_probe.py <peers dir> variants   # LinearSVC as the bench runs it, then with
                                                     # xmc's solver settings one at a time
    python linearsvc_probe.py <peers dir> refit      # trained on train vs train + half the
                                                     # validation records, scored on the other half

Run it with the bench's Python (target/xmc-bench/peers-venv/bin/python).
"""
import collections
import sys
import warnings

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize
from sklearn.svm import LinearSVC

import peers  # the bench's own script, beside this one

warnings.filterwarnings("ignore")
TAIL = 25


def read(path):
    """A split file as the bench writes it (`peers.read`), its labels as an array."""
    labels, texts = peers.read(path)
    return np.array(labels), texts


def features(train_texts, other_texts):
    """The bench's features: word 1-2 + char_wb 2-5 TF-IDF, sublinear tf, each block L2 normalised."""
    blocks = [
        TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32),
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, dtype=np.float32),
    ]
    X = sp.hstack([v.fit_transform(train_texts) for v in blocks]).tocsr()
    V = sp.hstack([v.transform(other_texts) for v in blocks]).tocsr()
    return X, V


def score(X, y, V, truth, tail, prune=0.0, C=1.0, **kw):
    model = LinearSVC(C=C, random_state=0, **kw).fit(X, y)
    if prune:
        model.coef_[np.abs(model.coef_) < prune] = 0
    ok = model.classes_[np.argmax(model.decision_function(V), axis=1)] == truth
    return 100 * ok.mean(), 100 * ok[tail].mean()


def variants(y, x, vy, vx):
    counts = collections.Counter(y.tolist())
    tail = np.array([counts[l] <= TAIL for l in vy])
    X, V = features(x, vx)
    Xn, Vn = normalize(X), normalize(V)
    rows = [
        ("LinearSVC as the bench runs it (C 1, tol 1e-4)", X, V, {}),
        ("rows L2-normalised again (xmc's features)", Xn, Vn, {}),
        ("rows L2-normalised again, C 2", Xn, Vn, {"C": 2.0}),
        ("tol 0.1, at most 20 passes (xmc's eps, max_iter)", X, V, {"tol": 0.1, "max_iter": 20}),
        ("weights below 0.1 pruned (xmc's threshold)", X, V, {"prune": 0.1}),
        ("all three: xmc's solver run flat", Xn, Vn, {"tol": 0.1, "max_iter": 20, "prune": 0.1}),
    ]
    print(f"{len(vy)} scored records, {tail.sum()} of them tail")
    for name, A, B, kw in rows:
        acc, tail_acc = score(A, y, B, vy, tail, **kw)
        print(f"| {name} | {acc:.2f} | {tail_acc:.2f} |", flush=True)


def refit(y, x, vy, vx, repeats=3):
    rng = np.random.default_rng(0)
    totals = collections.defaultdict(list)
    for _ in range(repeats):
        order = rng.permutation(len(vy))
        half_a, half_b = order[: len(vy) // 2], order[len(vy) // 2 :]
        counts = collections.Counter(y.tolist())
        tail = np.array([counts[l] <= TAIL for l in vy[half_b]])
        b_texts = [vx[i] for i in half_b]
        for name, (ty, tx) in {
            "train": (y, x),
            "train + half A": (np.concatenate([y, vy[half_a]]), x + [vx[i] for i in half_a]),
        }.items():
            X, V = features(tx, b_texts)
            totals[name].append(score(X, ty, V, vy[half_b], tail))
    for name, figures in totals.items():
        acc, tail_acc = np.mean(figures, axis=0)
        print(f"| {name} | {acc:.2f} | {tail_acc:.2f} | (mean over {repeats} halvings)")


def main():
    d, mode = sys.argv[1], sys.argv[2]
    y, x = read(f"{d}/train.tsv")
    vy, vx = read(f"{d}/test.tsv")
    {"variants": variants, "refit": refit}[mode](y, x, vy, vx)


if __name__ == "__main__":
    main()
