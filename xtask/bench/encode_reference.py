"""Reference throughput for `cargo xtask bench tree`: the same sentence encoder run by
sentence-transformers (PyTorch, CPU) on the same label texts, same batch size.

Usage: python encode_reference.py MODEL_DIR TEXTS_FILE BATCH_SIZE THREADS
Prints one JSON line: {"labels": n, "seconds": s, "labels_per_s": r, "torch": version}.
"""
import json
import sys
import time

import torch
from sentence_transformers import SentenceTransformer

model_dir, texts_file, batch_size, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
torch.set_num_threads(threads)
texts = [line.rstrip("\n") for line in open(texts_file, encoding="utf-8")]
model = SentenceTransformer(model_dir, device="cpu")
model.encode(texts[:batch_size], batch_size=batch_size)  # warm-up
start = time.perf_counter()
model.encode(texts, batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)
seconds = time.perf_counter() - start
print(json.dumps({"labels": len(texts), "seconds": seconds, "labels_per_s": len(texts) / seconds,
                  "torch": torch.__version__}))
