#!/usr/bin/env python3
"""
PyTorch side of bench/decode-vs-torch.ts: single-stream greedy decoding with Hugging Face
transformers (AutoModelForCausalLM in f32, its KV cache, plain argmax per step; no generate()
overheads such as logits processors) on the same model and prompt ids. Prints JSON: seconds per
repeat (prefill included, model load excluded), the CPU seconds of the fastest one and the generated ids (to check both sides
produce the same tokens).

With --batch-ids (S prompts of the same length, S × L int32), also the same greedy loop over all
S at once as one batch of rows (no padding needed: equal lengths), PyTorch's counterpart of S
concurrent streams: batchSeconds (fastest repeat) and the first row's ids. The single stream is
that loop over a batch of one.

  .venv/bin/python bench/torch_decode.py --model DIR --ids prompt.i32 --new-tokens N [--threads T] [--repeats R]
      [--batch-ids prompts.i32 --streams S] [--dtype float32|bfloat16]

--dtype bfloat16 loads the model in BF16 (activations BF16 too, as transformers runs a BF16
checkpoint by default): the peer of rfid-moe's BF16 matmul activations. Its greedy tokens then
follow BF16 arithmetic and need not match an f32 decode.
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch
import transformers
from transformers import AutoConfig, AutoModelForCausalLM


@torch.inference_mode()
def greedy(model, rows, steps):
    """Greedy decoding of equal-length prompts as one batch of rows: one forward pass per step for all rows."""
    out = []
    past = None
    inp = torch.tensor(rows, dtype=torch.long)
    for _ in range(steps):
        res = model(input_ids=inp, past_key_values=past, use_cache=True)
        past = res.past_key_values
        nxt = torch.argmax(res.logits[:, -1], dim=-1)
        out.append(nxt.tolist())
        inp = nxt.unsqueeze(1)
    return [[step[r] for step in out] for r in range(len(rows))]


def timed(run, repeats):
    """run() `repeats` times (the caller warms up first): the fastest wall seconds, the CPU seconds of that repeat, every repeat's seconds, the last result."""
    times, cpu, result = [], [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        c0 = time.process_time()
        result = run()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    best = min(times)
    return best, cpu[times.index(best)], times, result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--new-tokens", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-ids")
    ap.add_argument("--streams", type=int, default=0)
    ap.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    # configs written by the TypeScript fixtures store 0.0 as 0; transformers 5 validates float fields strictly
    with open(os.path.join(args.model, "config.json")) as f:
        raw = json.load(f)
    for key in ("router_jitter_noise", "attention_dropout", "rms_norm_eps", "rope_theta", "router_aux_loss_coef"):
        if isinstance(raw.get(key), int):
            raw[key] = float(raw[key])
    config = AutoConfig.for_model(**raw)
    model = AutoModelForCausalLM.from_pretrained(args.model, config=config, dtype=getattr(torch, args.dtype))
    model.eval()
    load = time.perf_counter() - t0
    ids = np.fromfile(args.ids, dtype="<i4").tolist()
    greedy(model, [ids], 4)  # warm-up
    # CPU seconds (all threads) of the fastest repeat: less sensitive to a loaded machine than wall time
    seconds, cpu, times, single = timed(lambda: greedy(model, [ids], args.new_tokens), args.repeats)
    result = {"loadSeconds": load, "seconds": seconds, "cpuSeconds": cpu, "allSeconds": times, "tokens": single[0], "threads": torch.get_num_threads(),
              "torch": torch.__version__, "transformers": transformers.__version__}
    if args.batch_ids:
        rows = np.fromfile(args.batch_ids, dtype="<i4").reshape(args.streams, -1).tolist()
        greedy(model, rows, 4)  # warm-up
        seconds, cpu, times, batch = timed(lambda: greedy(model, rows, args.new_tokens), args.repeats)
        result.update({"batchSeconds": seconds, "batchCpuSeconds": cpu, "allBatchSeconds": times, "batchFirstRow": batch[0]})
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
