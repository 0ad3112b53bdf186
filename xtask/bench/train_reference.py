"""Reference training speed for `cargo xtask bench train`: transformers' T5 with the same shape as
xmc's `small-cpu` preset, same batch, same sequence lengths, AdamW, on the CPU.

Usage: python train_reference.py VOCAB BATCH INPUT_LEN TARGET_LEN WARMUP STEPS THREADS
Prints one JSON line: {"steps_per_s": r, "params": n, "torch": version}.
"""
import json
import sys
import time

import torch
from transformers import T5Config, T5ForConditionalGeneration

vocab, batch, input_len, target_len, warmup, steps, threads = map(int, sys.argv[1:8])
torch.set_num_threads(threads)
torch.manual_seed(0)
config = T5Config(vocab_size=vocab, d_model=256, d_kv=32, d_ff=1024, num_heads=8, num_layers=4,
                  num_decoder_layers=4, feed_forward_proj="relu", dropout_rate=0.1,
                  decoder_start_token_id=0)
model = T5ForConditionalGeneration(config).train()
optim = torch.optim.AdamW(model.parameters(), lr=1e-4, eps=1e-8, weight_decay=0.01)
ids = torch.randint(2, vocab, (batch, input_len))
labels = torch.randint(2, vocab, (batch, target_len))


def step():
    optim.zero_grad()
    loss = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optim.step()


for _ in range(warmup):
    step()
start = time.perf_counter()
for _ in range(steps):
    step()
seconds = time.perf_counter() - start
print(json.dumps({"steps_per_s": steps / seconds, "params": sum(p.numel() for p in model.parameters()),
                  "torch": torch.__version__}))
