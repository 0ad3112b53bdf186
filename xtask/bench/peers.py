"""The field's tools on xmc's exact split: fastText supervised, Omikuji (Parabel-style trees on
TF-IDF), PECOS XR-Linear (PIFA + hierarchical k-means + linear rankers on TF-IDF) and
scikit-learn's LinearSVC on TF-IDF (one-vs-rest, what a catalogue team tries first).

Called by `cargo xtask bench peers`, which writes `train.tsv` / `test.tsv` (the scored split: test, or
valid with `--split valid`; label id, TAB, the
model input rendered by xmc's template) and scores the rankings written here with xmc's metrics.

    python peers.py <dir> <n_labels> <threads> <tools,comma,separated>

Writes <dir>/peers.json: {tool: {version, train_seconds, predict_seconds, ranked: [[label ids]]}}.
"""
import json
import os
import sys
import time

TOP_K = 5


def read(path):
    labels, texts = [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            label, text = line.rstrip("\n").split("\t", 1)
            labels.append(int(label))
            texts.append(text)
    return labels, texts


class quiet_stderr:
    def __enter__(self):
        sys.stderr.flush()
        self.saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc):
        os.dup2(self.saved, 2)
        os.close(self.saved)


def tfidf(train_texts):
    from sklearn.feature_extraction.text import TfidfVectorizer

    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=1, sublinear_tf=True, max_features=200_000, dtype="float32")
    return vec, vec.fit_transform(train_texts)


def run_fasttext(d, y, x, test_x, threads):
    import fasttext

    path = os.path.join(d, "fasttext_train.txt")
    started = time.perf_counter()
    with open(path, "w", encoding="utf-8") as f:
        for label, text in zip(y, x):
            f.write(f"__label__{label} {text}\n")
    model = fasttext.train_supervised(path, epoch=25, lr=0.5, wordNgrams=2, dim=100, minCount=1, thread=threads, verbose=0)
    trained = time.perf_counter()
    labels, _ = model.predict(test_x, k=TOP_K)
    ranked = [[int(l[len("__label__"):]) for l in row] for row in labels]
    done = time.perf_counter()
    return {"version": "fasttext-wheel 0.9.2", "train_seconds": trained - started, "predict_seconds": done - trained, "ranked": ranked}


def run_omikuji(d, y, x, test_x, n_labels, threads):
    import omikuji

    started = time.perf_counter()
    vec, X = tfidf(x)
    path = os.path.join(d, "omikuji_train.txt")
    with open(path, "w") as f:
        f.write(f"{X.shape[0]} {X.shape[1]} {n_labels}\n")
        for i, label in enumerate(y):
            row = X.getrow(i)
            feats = " ".join(f"{j}:{v:.6f}" for j, v in zip(row.indices, row.data))
            f.write(f"{label} {feats}\n")
    hp = omikuji.Model.default_hyper_param()
    with quiet_stderr():  # omikuji draws a progress bar per example
        model = omikuji.Model.train_on_data(path, hp, n_threads=threads)
    trained = time.perf_counter()
    T = vec.transform(test_x)
    ranked = []
    for i in range(T.shape[0]):
        row = T.getrow(i)
        preds = model.predict(list(zip(row.indices.tolist(), row.data.tolist())), top_k=TOP_K)
        ranked.append([int(l) for l, _ in preds])
    done = time.perf_counter()
    return {"version": "omikuji 0.5.2 (Parabel defaults)", "train_seconds": trained - started, "predict_seconds": done - trained, "ranked": ranked}


def run_linearsvc(d, y, x, test_x, threads):
    """TF-IDF (word 1-2-grams + char_wb 2-5-grams, sublinear tf, each block L2 normalised and the
    two side by side, as scikit-learn's FeatureUnion of two TfidfVectorizers gives) + LinearSVC
    (C = 1, squared hinge, one-vs-rest), ranked by decision value."""
    import numpy as np
    import scipy.sparse as sp
    from sklearn import __version__ as sklearn_version
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    started = time.perf_counter()
    words = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, dtype=np.float32)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True, dtype=np.float32)
    features = lambda texts, fit: sp.hstack([(v.fit_transform if fit else v.transform)(texts) for v in (words, chars)]).tocsr()
    X = features(x, True)
    model = LinearSVC(C=1.0, loss="squared_hinge").fit(X, np.array(y))
    trained = time.perf_counter()
    scores = model.decision_function(features(test_x, False))
    if scores.ndim == 1:  # two classes
        scores = np.stack([-scores, scores], axis=1)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_K]
    ranked = [[int(model.classes_[j]) for j in row] for row in top]
    done = time.perf_counter()
    return {"version": f"scikit-learn {sklearn_version} (LinearSVC, C=1, word 1-2 + char_wb 2-5 TF-IDF)", "train_seconds": trained - started, "predict_seconds": done - trained, "ranked": ranked}


def run_pecos(d, y, x, test_x, n_labels, threads):
    import numpy as np
    import scipy.sparse as sp
    from pecos.xmc import Indexer, LabelEmbeddingFactory
    from pecos.xmc.xlinear.model import XLinearModel

    started = time.perf_counter()
    vec, X = tfidf(x)
    X = X.astype(np.float32).tocsr()
    Y = sp.csr_matrix((np.ones(len(y), dtype=np.float32), (np.arange(len(y)), np.array(y))), shape=(len(y), n_labels))
    label_feat = LabelEmbeddingFactory.create(Y, X, method="pifa")
    chain = Indexer.gen(label_feat, indexer_type="hierarchicalkmeans", nr_splits=16, threads=threads)
    model = XLinearModel.train(X, Y, C=chain, threads=threads)
    trained = time.perf_counter()
    T = vec.transform(test_x).astype(np.float32).tocsr()
    P = model.predict(T, beam_size=10, only_topk=TOP_K, threads=threads).tocsr()
    ranked = []
    for i in range(P.shape[0]):
        start, end = P.indptr[i], P.indptr[i + 1]
        order = np.argsort(-P.data[start:end], kind="stable")
        ranked.append([int(P.indices[start + j]) for j in order])
    done = time.perf_counter()
    import pecos

    version = getattr(pecos, "__version__", "1.2.8")
    return {"version": f"libpecos {version} (XR-Linear)", "train_seconds": trained - started, "predict_seconds": done - trained, "ranked": ranked}


def main():
    d, n_labels, threads, tools = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(",")
    y, x = read(os.path.join(d, "train.tsv"))
    _, test_x = read(os.path.join(d, "test.tsv"))
    out = {}
    for tool in tools:
        print(f"peers: training {tool} on {len(y)} records ...", file=sys.stderr, flush=True)
        try:
            if tool == "fasttext":
                out[tool] = run_fasttext(d, y, x, test_x, threads)
            elif tool == "omikuji":
                out[tool] = run_omikuji(d, y, x, test_x, n_labels, threads)
            elif tool == "pecos":
                out[tool] = run_pecos(d, y, x, test_x, n_labels, threads)
            elif tool == "linearsvc":
                out[tool] = run_linearsvc(d, y, x, test_x, threads)
            else:
                raise ValueError(f"unknown tool {tool}")
        except ImportError as e:
            out[tool] = {"error": f"not installed: {e}"}
        r = out[tool]
        if "error" in r:
            print(f"peers: {tool}: {r['error']}", file=sys.stderr)
        else:
            print(f"peers: {tool}: train {r['train_seconds']:.1f} s, predict {r['predict_seconds']:.2f} s", file=sys.stderr)
    with open(os.path.join(d, "peers.json"), "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
