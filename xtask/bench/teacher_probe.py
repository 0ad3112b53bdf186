"""Would a stronger sentence encoder pay as the classifier? `cargo xtask bench teacher`'s probe.

Fine-tunes each given sentence-transformers folder the same way, as a classifier over the
catalogue's labels, on the same prepared training records, as xmc's recipe fine-tunes
(`contrastive.loss = "labels"`): a learnt vector per label, initialised from the pretrained
encoder's (mean-pooled, unit) embedding of the label's path; a record's logits are its cosine to
every label vector over the temperature; cross-entropy; AdamW (weight decay 0.01) with 50 warm-up
steps and a linear decay, the label vectors at `LABEL_SCALE` times the encoder's rate; gradients
clipped at 1; the same batches in the same order for every encoder. It
scores every epoch on the validation records: accuracy, macro-F1 over the labels present, and the
accuracy on the records of tail labels (as the dataset defines them: <= 25 training records). PyTorch on the CPU, so the encoders compare
like with like; xmc's own fine-tuning (burn, a contrastive loss over label embeddings) is not
what runs here (PyTorch, not burn; no length batches), so the figures rank the encoders, they are
not xmc's.

Usage: python teacher_probe.py RECORDS_TSV LABELS_TSV EPOCHS BATCH LR LABEL_SCALE TEMPERATURE
       MAX_LEN THREADS SEED MODEL_DIR...
RECORDS_TSV: one record per line, `split<TAB>label<TAB>tail<TAB>text` (split: train or valid;
tail: 1 when the record's label is a tail label). LABELS_TSV: `label<TAB>path`, one per label.
Prints one JSON line per model and epoch.
"""
import json
import random
import sys
import time

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

records_file, labels_file = sys.argv[1], sys.argv[2]
epochs, batch = int(sys.argv[3]), int(sys.argv[4])
lr, label_scale, temperature = (float(a) for a in sys.argv[5:8])
max_len, threads, seed = (int(a) for a in sys.argv[8:11])
models = sys.argv[11:]
WARMUP = 50
torch.set_num_threads(threads)

train, valid, valid_tail = [], [], []
for line in open(records_file, encoding="utf-8"):
    split, label, tail, text = line.rstrip("\n").split("\t", 3)
    if split == "train":
        train.append((text, int(label)))
    else:
        valid.append((text, int(label)))
        valid_tail.append(tail == "1")
label_rows = [line.rstrip("\n").split("\t", 1) for line in open(labels_file, encoding="utf-8")]
labels = [int(l) for l, _ in label_rows]
label_texts = [t for _, t in label_rows]
index = {l: i for i, l in enumerate(labels)}


def scores(gold, pred):
    gold, pred = np.asarray(gold), np.asarray(pred)
    accuracy = float((gold == pred).mean())
    f1s = []
    for l in np.unique(gold):
        tp = float(((pred == l) & (gold == l)).sum())
        p = tp / max((pred == l).sum(), 1)
        r = tp / max((gold == l).sum(), 1)
        f1s.append(0.0 if p + r == 0 else 2 * p * r / (p + r))
    in_tail = np.asarray(valid_tail)
    tail_accuracy = float((gold[in_tail] == pred[in_tail]).mean()) if in_tail.any() else float("nan")
    return accuracy, float(np.mean(f1s)), tail_accuracy, int(in_tail.sum())


for path in models:
    torch.manual_seed(seed)
    random.seed(seed)
    encoder = SentenceTransformer(path, device="cpu")
    encoder.max_seq_length = max_len
    body = encoder[0]

    def embed(texts):
        features = (getattr(body, "preprocess", None) or body.tokenize)(texts)
        out = body(features)
        mask = features["attention_mask"].unsqueeze(-1).float()
        pooled = (out["token_embeddings"] * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return torch.nn.functional.normalize(pooled, dim=-1)

    body.eval()
    with torch.no_grad():
        start_vectors = torch.cat([embed(label_texts[b : b + 64]) for b in range(0, len(label_texts), 64)])
    label_vectors = torch.nn.Parameter(start_vectors.clone())

    def logits(texts):
        return embed(texts) @ torch.nn.functional.normalize(label_vectors, dim=-1).T / temperature

    params = list(body.parameters()) + [label_vectors]
    optim = torch.optim.AdamW([{"params": list(body.parameters()), "lr": lr},
                               {"params": [label_vectors], "lr": lr * label_scale}], weight_decay=0.01)
    steps = epochs * ((len(train) + batch - 1) // batch)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optim, lambda s: (s + 1) / WARMUP if s < WARMUP else max(0.0, (steps - s) / max(steps - WARMUP, 1)))

    order = list(range(len(train)))
    shuffle = random.Random(seed)
    # Epoch 0: the pretrained encoder against its label vectors, before any step.
    for epoch in range(0, epochs + 1):
        body.train()
        shuffle.shuffle(order)
        start = time.perf_counter()
        for b in range(0, len(order) if epoch > 0 else 0, batch):
            chunk = [train[i] for i in order[b : b + batch]]
            loss = torch.nn.functional.cross_entropy(logits([t for t, _ in chunk]), torch.tensor([index[l] for _, l in chunk]))
            optim.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optim.step()
            schedule.step()
        seconds = max(time.perf_counter() - start, 1e-9)
        body.eval()
        predicted = []
        with torch.no_grad():
            for b in range(0, len(valid), 64):
                predicted.extend(logits([t for t, _ in valid[b : b + 64]]).argmax(-1).tolist())
        accuracy, macro_f1, tail_accuracy, tail_records = scores([index[l] for _, l in valid], predicted)
        print(json.dumps({"model": path, "epoch": epoch, "train_records_per_s": len(train) / seconds if epoch > 0 else 0.0,
                          "valid_accuracy": accuracy, "valid_macro_f1": macro_f1,
                          "valid_tail_accuracy": tail_accuracy, "valid_tail_records": tail_records,
                          "params": sum(p.numel() for p in body.parameters())}), flush=True)
