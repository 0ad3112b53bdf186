"""Offline probes of the classifier's weight fit (`EncoderClassifier::fit_weight`): the fit replayed
on what a train stage fitted on, and variants of it, cross-fitted on the validation records' two
halves as the fit itself is (accuracy / tail accuracy / macro-F1 of the top label, in %).

Make the inputs by rerunning a run's train stage with the fit's inputs written out (over the
run's fine-tuned encoder, a few minutes):

    XMC_FIT_DUMP=<dump dir> cargo xtask experiment configs/recommended.toml \\
        --set data.dataset='"datasets/<d>.toml"' --set name='"<run>"' \\
        --set contrastive.reuse='"experiments/<recipe run>/train"'

then, with the bench's Python (target/xmc-bench/peers-venv/bin/python):

    python fit_replay.py variants <dump dir> experiments/<run>
        # the fit as built, without the prior, the prior's weight capped at 0.3, a floor on the
        # training count in the log prior, the grid's counts smoothed before the choice
    python fit_replay.py settings <dump dir>
        # the settings' rankers averaged instead of one chosen: the union of their candidates,
        # each label's ln score the mean over the settings (a setting that did not rank it: its
        # lowest candidate's, less 1), the weights fitted over that; the dump must hold the
        # four settings of `choose` in their order (k = 16 product, k = 16 geometric mean, k = 6
        # product, k = 6 geometric mean), each fitted on the ranker's candidates then widened
        # (fit0-fit7: the recipe's train stage with no `choose.max_records` retraining)
    python fit_replay.py linearsvc <dump dir> experiments/<run> <peers dir>
        # LinearSVC's margin as one more evidence beside the classifier's, its weight fitted
        # with the others; the peers dir of `cargo xtask bench peers --split valid` for the same
        # run (its test.tsv holds the validation records)
    python fit_replay.py brand <dump dir> experiments/<run>
        # the record's brand as evidence beside the classifier's: each candidate's ln P(label |
        # brand) / P(label) from the training records' counts (brand, else manufacturer, as
        # xmc-brand reads it), shrunk towards P(label) with alpha in {1, 5, 20} pseudo-records,
        # for the label itself and for its ancestor at each depth, its weight in {0, 0.1, 0.25,
        # 0.5, 1} fitted with the others (the validation records from <run>/data/records.parquet)
        # (`brand` and `misses` read that Parquet file with pandas and pyarrow, which the
        # bench's venv lacks: `<venv>/bin/pip install pandas pyarrow` once)
    python fit_replay.py misses <dump dir> experiments/<run>
        # each cross-fitted miss's nearest training title (word 1-2-gram TF-IDF cosine): how
        # close, and whether it carries the prediction's label, the truth's or another
    python fit_replay.py wide <dump dir> experiments/<run>
        # the classifier alone over the candidates, and the weight grid widened to 20
    python fit_replay.py reranker <dump dir> experiments/<run>
        # a learnt reranker instead of the grid: a conditional logit (softmax over a record's
        # candidates, L2 1.0) on the grid's three evidences, then with ranks, top flags, the
        # taxonomy parent's mass among the candidates and rarity flags, fitted on one half of the
        # validation records and scored on the other (labels' parents from <run>/data/labels.json)

The fit replayed is the one the run's model kept (its classifier.json's cross-fitted accuracy and
weight are matched, so the replay is checked against the Rust fit). The chosen setting of the
train stage is not revisited: a variant changes only the final fit.
"""
import glob
import json
import os
import sys

import numpy as np

W = np.arange(41) * 0.05  # classifier weights, as WEIGHT_GRID
TAU = np.arange(11) * 0.1  # prior weights, as PRIOR_GRID


def load(path):
    d = json.load(open(path))
    rows = d["scored"]
    r, c = len(rows), max(len(x) for x in rows)
    lab = np.full((r, c), -1, np.int64)
    lns, lp = np.full((r, c), -np.inf), np.zeros((r, c))
    for i, cands in enumerate(rows):
        for j, cand in enumerate(cands):
            lab[i, j], lns[i, j], lp[i, j] = cand[:3]
    return {"lab": lab, "lns": lns, "lp": lp, "truths": np.array(d["truths"]), "tail": np.array(d["tail"], bool),
            "counts": np.array(d["counts"], np.float64)}


def log_prior(counts, floor=0.0):
    """Each label's log training share, add-one smoothed, as the fit's; counts below `floor` raised to it."""
    return np.log((np.maximum(counts, floor) + 1.0) / (counts.sum() + len(counts)))


def top(d, prior, w, tau, extra=None):
    s = d["lns"] + w * (d["lp"] - tau * prior[np.maximum(d["lab"], 0)])
    if extra is not None:
        s = s + extra
    s = np.where(d["lab"] < 0, -np.inf, s)
    return d["lab"][np.arange(len(s)), s.argmax(1)]


def macro_f1(truths, pred):
    f1 = []
    for label in set(truths.tolist()) | set(pred.tolist()):
        tp = np.sum((truths == label) & (pred == label))
        f1.append(0.0 if tp == 0 else 2 * tp / (np.sum(truths == label) + np.sum(pred == label)))
    return float(np.mean(f1))


def grid_counts(d, prior, idx, extra=None):
    """(hits, tail hits) over records `idx` for every (tau, w) of the grid."""
    t, tail = d["truths"][idx], d["tail"][idx]
    hits = np.zeros((len(TAU), len(W)))
    tails = np.zeros_like(hits)
    for a, tau in enumerate(TAU):
        for b, w in enumerate(W):
            ok = top(d, prior, w, tau, extra)[idx] == t
            hits[a, b], tails[a, b] = ok.sum(), (ok & tail).sum()
    return hits, tails


def choose(hits, tails, taus=len(TAU), smooth=0):
    """The fit's choice: most hits, then most tail hits, ties to the smaller prior weight then weight."""
    if smooth:
        from scipy.ndimage import uniform_filter
        hits, tails = uniform_filter(hits, smooth, mode="nearest"), uniform_filter(tails, smooth, mode="nearest")
    key = (hits * 100000 + tails)[:taus]
    return np.unravel_index(np.argmax(key), key.shape)  # (prior index, weight index)


def cross_fitted(d, prior, extras=(None,), **kw):
    """Each half scored with the setting (and extra evidence weight) chosen on the other half."""
    n = len(d["truths"])
    idx = np.arange(n)
    halves = [idx[idx % 2 == 0], idx[idx % 2 == 1]]
    pred = np.zeros(n, np.int64)
    chosen = []
    for h in range(2):
        best = None
        for k, extra in enumerate(extras):
            hits, tails = grid_counts(d, prior, halves[h], extra)
            a, b = choose(hits, tails, **kw)
            key = (hits[a, b], tails[a, b])
            if best is None or key > best[0]:
                best = (key, W[b], TAU[a], extra, k)
        _, w, tau, extra, k = best
        # With more than one extra evidence weight, the chosen one's index among `extras` too.
        chosen.append((round(float(w), 2), round(float(tau), 1)) + ((k,) if len(extras) > 1 else ()))
        pred[halves[1 - h]] = top(d, prior, w, tau, extra)[halves[1 - h]]
    return pred, chosen


def figures(d, pred):
    ok = pred == d["truths"]
    return f"{100 * ok.mean():.2f} / {100 * ok[d['tail']].mean():.2f} / {100 * macro_f1(d['truths'], pred):.2f}"


def kept_fit(dump_dir, run):
    """The dumped fit that the run's model kept."""
    fit = json.load(open(os.path.join(run, "train", "classifier.json")))["fit"]
    files = sorted(glob.glob(os.path.join(dump_dir, "fit*.json")), key=lambda f: int(os.path.basename(f)[3:-5]))
    for path in reversed(files):
        d = load(path)
        pred, _ = cross_fitted(d, log_prior(d["counts"]))
        hits, tails = grid_counts(d, log_prior(d["counts"]), np.arange(len(d["truths"])))
        if abs(np.mean(pred == d["truths"]) - fit["cross_fitted_accuracy"]) < 1e-9 and abs(W[choose(hits, tails)[1]] - fit["best_weight"]) < 1e-4:
            return path, d
    sys.exit(f"no fit in {dump_dir} reproduces {run}/train/classifier.json")


def variants(dump_dir, run):
    path, d = kept_fit(dump_dir, run)
    prior = log_prior(d["counts"])
    print(f"{path}: {len(d['truths'])} validation records, {d['tail'].sum()} tail")
    print(f"| the ranker alone | {figures(d, top(d, prior, 0.0, 0.0))} | |")
    rows = [("the fit as built", prior, {}), ("no prior", prior, {"taus": 1}), ("prior weight at most 0.3", prior, {"taus": 4})]
    rows += [(f"training counts floored at {f} in the prior", log_prior(d["counts"], f), {}) for f in (2, 5, 10, 25)]
    rows += [(f"grid counts smoothed {k}x{k} before the choice", prior, {"smooth": k}) for k in (3, 5)]
    for name, p, kw in rows:
        pred, chosen = cross_fitted(d, p, **kw)
        print(f"| {name} | {figures(d, pred)} | {chosen} |", flush=True)


def linearsvc(dump_dir, run, peers_dir):
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import linearsvc_probe as probe
    from sklearn.svm import LinearSVC

    path, d = kept_fit(dump_dir, run)
    y, x = probe.read(os.path.join(peers_dir, "train.tsv"))
    vy, vx = probe.read(os.path.join(peers_dir, "test.tsv"))
    if len(vy) < len(d["truths"]) or (vy[: len(d["truths"])] != d["truths"]).any():
        sys.exit(f"{peers_dir}/test.tsv is not this run's validation split (run the bench with --split valid and --ours {run})")
    X, V = probe.features(x, vx)
    model = LinearSVC(C=1.0, random_state=0).fit(X, y)
    margins = np.full((len(vy), len(d["counts"])), -10.0)
    margins[:, model.classes_] = model.decision_function(V)
    on_candidates = margins[np.arange(len(d["truths"]))[:, None], np.maximum(d["lab"], 0)]
    prior = log_prior(d["counts"])
    svm_top = model.classes_[np.argmax(margins[:, model.classes_], 1)][: len(d["truths"])]
    missing = ~(d["lab"] == d["truths"][:, None]).any(1)
    print(f"{path}: LinearSVC alone {figures(d, svm_top)}; the truth is not among the candidates on {missing.sum()} records, "
          f"LinearSVC's top label is right on {(missing & (svm_top == d['truths'])).sum()} of them")
    pred, chosen = cross_fitted(d, prior)
    print(f"| the fit as built | {figures(d, pred)} | {chosen} |")
    extras = [v * on_candidates for v in (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)]
    pred, chosen = cross_fitted(d, prior, extras=extras)
    print(f"| with LinearSVC's margin | {figures(d, pred)} | {chosen} |")


def records_of(run):
    """The run's prepared records (its data stage's Parquet file) as a pandas frame."""
    try:
        import pandas as pd
        import pyarrow  # noqa: F401  (pandas' Parquet engine)
    except ImportError:
        sys.exit("reading experiments/<run>/data/records.parquet needs pandas and pyarrow: <venv>/bin/pip install pandas pyarrow")
    return pd.read_parquet(os.path.join(run, "data", "records.parquet"))


def splits_of(run, d):
    """The run's training records and its validation records that the dump `d` scored (the
    first ones, in split order), or an exit when their labels are not the dump's truths."""
    df = records_of(run)
    train, valid = df[df["split"] == "train"], df[df["split"] == "valid"].iloc[: len(d["truths"])]
    if len(valid) < len(d["truths"]) or (valid["label"].to_numpy() != d["truths"]).any():
        sys.exit("the dump's records are not the run's validation records in order")
    return train, valid


def brands_of(run, d):
    """Each record's brand as xmc-brand's `brand_of` reads it (brand, else manufacturer; lower-case
    alphanumeric words; "" when none): the brands of the validation records the dump `d` scored,
    in order, and the training records' (brand, label) pairs."""
    import re

    def brand(row):
        raw = row["brand"] if isinstance(row["brand"], str) else row["manufacturer"]
        raw = raw if isinstance(raw, str) else ""
        return " ".join(w.lower() for w in re.split(r"[^0-9A-Za-z\u00C0-\uFFFF]+", raw) if w)

    train, valid = splits_of(run, d)
    return valid.apply(brand, axis=1).tolist(), list(zip(train.apply(brand, axis=1), train["label"]))


def labels_of(run):
    """The run's labels as its data stage wrote them (id, levels, ...)."""
    labels = json.load(open(os.path.join(run, "data", "labels.json")))
    return labels["labels"] if isinstance(labels, dict) else labels


def path_groups(labels, cut):
    """Each label's group, numbered: labels whose paths cut by `cut` (a function of the levels)
    are equal share one."""
    ids, group = {}, np.zeros(len(labels), np.int64)
    for label in labels:
        group[label["id"]] = ids.setdefault(" > ".join(cut(label["levels"])), len(ids))
    return group


def brand_lift(d, brands, labels, alpha, level=None):
    """Each candidate's brand evidence: ln P(label | brand) / P(label), P(label | brand) from the
    training records' (brand, label) counts shrunk towards P(label) with `alpha` pseudo-records
    (0 for a record without a brand or with one never seen in training). With `level`, the
    label's ancestor at that depth (its path cut to `level` levels) stands for the label.
    `brands` is [`brands_of`]'s answer, `labels` [`labels_of`]'s."""
    valid_brands, pairs = brands
    group = path_groups(labels, lambda levels: levels if level is None else levels[:level])
    from collections import Counter
    joint = Counter((b, group[l]) for b, l in pairs if b)
    per_brand = Counter(b for b, _ in pairs if b)
    share = np.bincount(group[[l for _, l in pairs]], minlength=group.max() + 1) + 1.0
    share = share / share.sum()
    lift = np.zeros(d["lab"].shape)
    for i, b in enumerate(valid_brands):
        if not b or per_brand[b] == 0:
            continue
        for j in np.flatnonzero(d["lab"][i] >= 0):
            g = group[d["lab"][i, j]]
            lift[i, j] = np.log((joint[(b, g)] + alpha * share[g]) / ((per_brand[b] + alpha) * share[g]))
    return lift


def brand(dump_dir, run):
    """The brand's evidence beside the classifier's: each candidate's ln P(label | brand) /
    P(label) from the training records, with a weight fitted with the others."""
    path, d = kept_fit(dump_dir, run)
    prior = log_prior(d["counts"])
    print(f"{path}: {len(d['truths'])} validation records, {d['tail'].sum()} tail")
    pred, chosen = cross_fitted(d, prior)
    print(f"| the fit as built | {figures(d, pred)} | {chosen} |", flush=True)
    brands, labels = brands_of(run, d), labels_of(run)
    depth = max(len(label["levels"]) for label in labels)
    for level in [None] + list(range(1, depth)):
        for alpha in (1.0, 5.0, 20.0):
            lift = brand_lift(d, brands, labels, alpha, level)
            extras = [v * lift for v in (0.0, 0.1, 0.25, 0.5, 1.0)]
            pred, chosen = cross_fitted(d, prior, extras=extras)
            where = "the label" if level is None else f"its level-{level} ancestor"
            print(f"| brand lift of {where}, alpha {alpha:g} | {figures(d, pred)} | {chosen} |", flush=True)


def misses(dump_dir, run):
    """Where the fit's cross-fitted misses come from: each missed validation title's nearest
    training title (word 1-2-gram TF-IDF, sublinear, cosine), by how close it is and whose label
    it carries (the prediction's, the truth's or another)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    path, d = kept_fit(dump_dir, run)
    pred, _ = cross_fitted(d, log_prior(d["counts"]))
    train, valid = splits_of(run, d)
    n = len(d["truths"])
    vec = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2)).fit(train["title"])
    missed = np.flatnonzero(pred != d["truths"])
    sims = (vec.transform(valid["title"].to_numpy()[missed]) @ vec.transform(train["title"]).T).toarray()
    labels = train["label"].to_numpy()
    counts = {}
    for k, i in enumerate(missed):
        nearest = int(np.argmax(sims[k]))
        s = sims[k, nearest]
        close = "cosine >= 0.8" if s >= 0.8 else "cosine 0.5-0.8" if s >= 0.5 else "cosine < 0.5"
        whose = "the prediction's" if labels[nearest] == pred[i] else "the truth's" if labels[nearest] == d["truths"][i] else "another"
        counts[(close, whose)] = counts.get((close, whose), 0) + 1
    absent = int((~(d["lab"][missed] == d["truths"][missed, None]).any(1)).sum())
    print(f"{path}: {len(missed)} of {n} validation records missed (cross-fitted), {absent} with the truth among no candidate; the nearest training title:")
    for key in sorted(counts):
        print(f"| {key[0]} | {key[1]} label | {counts[key]} |")


def wide(dump_dir, run):
    """The classifier's weight beyond the grid's 2: the classifier alone over the candidates,
    and the fit cross-fitted with weights up to 20."""
    global W
    path, d = kept_fit(dump_dir, run)
    prior = log_prior(d["counts"])
    pred, chosen = cross_fitted(d, prior)
    print(f"{path}: the fit as built {figures(d, pred)} {chosen}")
    s = np.where(d["lab"] < 0, -np.inf, d["lp"])
    print(f"the classifier alone over the candidates {figures(d, d['lab'][np.arange(len(s)), s.argmax(1)])}")
    W = np.concatenate([np.arange(41) * 0.05, [2.5, 3, 4, 5, 6, 8, 10, 15, 20]])
    pred, chosen = cross_fitted(d, prior)
    print(f"weights up to 20, cross-fitted {figures(d, pred)} {chosen}")


def merged(fits):
    """The union of the fits' candidates per record; a label's ln score the mean over the fits, a
    fit that lacks it counting its lowest candidate's score less 1."""
    n = len(fits[0]["truths"])
    rows = []
    for i in range(n):
        floors = [f["lns"][i][f["lab"][i] >= 0].min() - 1.0 for f in fits]
        labels = {}
        for k, f in enumerate(fits):
            for j in np.flatnonzero(f["lab"][i] >= 0):
                entry = labels.setdefault(f["lab"][i, j], [list(floors), f["lp"][i, j]])
                entry[0][k] = f["lns"][i, j]
        rows.append(labels)
    width = max(map(len, rows))
    lab = np.full((n, width), -1, np.int64)
    lns = np.full((n, width), -np.inf)
    lp = np.zeros((n, width))
    for i, labels in enumerate(rows):
        for j, (label, (scores, log_p)) in enumerate(labels.items()):
            lab[i, j], lns[i, j], lp[i, j] = label, np.mean(scores), log_p
    return {"lab": lab, "lns": lns, "lp": lp, "truths": fits[0]["truths"], "tail": fits[0]["tail"], "counts": fits[0]["counts"]}


def settings(dump_dir):
    fits = [load(os.path.join(dump_dir, f"fit{k}.json")) for k in range(8)]
    prior = log_prior(fits[0]["counts"])
    names = ["k = 16, product", "k = 16, geometric mean", "k = 6, product", "k = 6, geometric mean"]
    for k, name in enumerate(names):
        pred, _ = cross_fitted(fits[2 * k + 1], prior)
        print(f"| {name} (widened) | {figures(fits[2 * k + 1], pred)} |")
    for name, pick in [("k = 16 and k = 6, product", [1, 5]), ("k = 16 and k = 6, geometric mean", [3, 7]), ("all four", [1, 3, 5, 7])]:
        both = merged([fits[k] for k in pick])
        pred, _ = cross_fitted(both, prior)
        print(f"| {name}, averaged | {figures(both, pred)} |", flush=True)


def parents_of(run):
    """Each label's taxonomy parent, numbered."""
    return path_groups(labels_of(run), lambda levels: levels[:-1])


def reranker_features(d, parent, names):
    lab, mask = np.maximum(d["lab"], 0), d["lab"] >= 0
    lns, lp = np.where(mask, d["lns"], -30.0), np.where(mask, d["lp"], -30.0)
    count = d["counts"][lab]
    ranker_rank, classifier_rank = np.argsort(np.argsort(-lns, 1), 1), np.argsort(np.argsort(-lp, 1), 1)
    same_parent = (parent[lab][:, :, None] == parent[lab][:, None, :]) & mask[:, None, :]
    mass = lambda x: np.log((np.exp(x)[:, None, :] * same_parent).sum(2) + 1e-12)
    every = {"ln score": lns, "log p": lp, "log prior": log_prior(d["counts"])[lab],
             "ranks": [np.log1p(ranker_rank), np.log1p(classifier_rank), 1.0 * (ranker_rank == 0), 1.0 * (classifier_rank == 0)],
             "parent mass": [mass(lp), mass(lns)],
             "rarity": [1.0 * (count <= 5), 1.0 * (count <= 25), lp * (count <= 25)]}
    cols = []
    for name in names:
        cols += every[name] if isinstance(every[name], list) else [every[name]]
    return np.stack(cols, -1), mask


def conditional_logit(x, mask, y, l2=1.0):
    from scipy.optimize import minimize
    n = len(y)

    def loss(w):
        s = np.where(mask, x @ w, -1e9)
        top = s.max(1, keepdims=True)
        e = np.exp(s - top)
        z = e.sum(1)
        p = e / z[:, None]
        ll = s[np.arange(n), y] - top[:, 0] - np.log(z)
        grad = -(x[np.arange(n), y] - (p[..., None] * x).sum(1)).sum(0) + l2 * w
        return -ll.sum() + 0.5 * l2 * w @ w, grad

    w0 = np.zeros(x.shape[2])
    w0[:2] = [1.0, 0.5]
    return minimize(loss, w0, jac=True, method="L-BFGS-B").x


def reranker(dump_dir, run):
    path, d = kept_fit(dump_dir, run)
    parent = parents_of(run)
    pred, _ = cross_fitted(d, log_prior(d["counts"]))
    print(f"{path}: the fit as built {figures(d, pred)}")
    at = d["lab"] == d["truths"][:, None]
    found = at.any(1)
    y = at.argmax(1)
    idx = np.arange(len(y))
    halves = [idx[idx % 2 == 0], idx[idx % 2 == 1]]
    base = ["ln score", "log p", "log prior"]
    for names in [base, base + ["ranks"], base + ["parent mass"], base + ["ranks", "parent mass", "rarity"]]:
        x, mask = reranker_features(d, parent, names)
        pred = np.zeros(len(y), np.int64)
        for h in range(2):
            fit_on = halves[h][found[halves[h]]]
            w = conditional_logit(x[fit_on], mask[fit_on], y[fit_on])
            other = halves[1 - h]
            pred[other] = d["lab"][other, np.where(mask[other], x[other] @ w, -1e9).argmax(1)]
        print(f"| {' + '.join(names)} | {figures(d, pred)} |", flush=True)


if __name__ == "__main__":
    {"variants": variants, "linearsvc": linearsvc, "brand": brand, "misses": misses, "wide": wide, "settings": settings, "reranker": reranker}[sys.argv[1]](*sys.argv[2:])
