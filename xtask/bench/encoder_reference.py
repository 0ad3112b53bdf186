"""Python references for `cargo xtask bench encoder`: ONNX Runtime's Python package on the same
exported graphs (fp32 and int8) that xmc's fast path runs, and sentence-transformers (PyTorch)
on the pretrained folder (the same architecture and cost), on the same texts, batch size and
threads. Tokenization is inside the timing, as in the Rust rows.

Usage: python encoder_reference.py GRAPH_DIR TOKENIZER_JSON PRETRAINED_DIR TEXTS_FILE BATCH THREADS ROUNDS LATENCY_N
Prints one JSON line per row: {"name", "records_per_s", "latency_ms"}.
"""
import json
import os
import statistics
import sys
import time

import numpy as np

graph_dir, tokenizer_file, pretrained, texts_file = sys.argv[1:5]
batch, threads, rounds, latency_n = (int(a) for a in sys.argv[5:9])
texts = [line.rstrip("\n") for line in open(texts_file, encoding="utf-8")]


def median_rate(run):
    run()  # warm-up
    rates = []
    for _ in range(max(rounds, 1)):
        start = time.perf_counter()
        run()
        rates.append(len(texts) / (time.perf_counter() - start))
    return statistics.median(rates)


def p50_latency(encode_one):
    times = []
    for t in texts[:latency_n]:
        start = time.perf_counter()
        encode_one(t)
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def emit(name, rate, latency):
    print(json.dumps({"name": name, "records_per_s": rate, "latency_ms": latency}), flush=True)


def onnxruntime_rows():
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(tokenizer_file)
    tokenizer.no_padding()
    tokenizer.enable_truncation(256)
    graphs = sorted(f for f in os.listdir(graph_dir) if f.startswith("encoder-") and f.endswith(".onnx"))
    for graph in graphs:
        precision = graph[len("encoder-") : -len(".onnx")]
        path = os.path.join(graph_dir, graph)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

        def run_batch(ids_list):
            length = max(len(i) for i in ids_list)
            ids = np.zeros((len(ids_list), length), dtype=np.int64)
            mask = np.zeros((len(ids_list), length), dtype=np.float32)
            for row, i in enumerate(ids_list):
                ids[row, : len(i)] = i
                mask[row, : len(i)] = 1.0
            return session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})[0]

        def sorted_batches():
            ids = [e.ids for e in tokenizer.encode_batch(texts)]
            order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
            for s in range(0, len(order), batch):
                run_batch([ids[i] for i in order[s : s + batch]])

        def input_order():
            for s in range(0, len(texts), batch):
                run_batch([e.ids for e in tokenizer.encode_batch(texts[s : s + batch])])

        latency = p50_latency(lambda t: run_batch([tokenizer.encode(t).ids]))
        emit(f"ONNX Runtime {ort.__version__} (Python), {precision}, batches of similar length", median_rate(sorted_batches), latency)
        emit(f"ONNX Runtime {ort.__version__} (Python), {precision}, batches in input order (padded)", median_rate(input_order), latency)


def sentence_transformers_row():
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    model = SentenceTransformer(pretrained, device="cpu")
    run = lambda: model.encode(texts, batch_size=batch, normalize_embeddings=True, show_progress_bar=False)
    latency = p50_latency(lambda t: model.encode([t], batch_size=1, normalize_embeddings=True, show_progress_bar=False))
    emit(f"sentence-transformers (PyTorch {torch.__version__}), fp32, its own length sorting", median_rate(run), latency)


for rows in (onnxruntime_rows, sentence_transformers_row):
    try:
        rows()
    except ImportError as e:
        print(f"encoder_reference.py: skipped {rows.__name__}: {e}", file=sys.stderr)
