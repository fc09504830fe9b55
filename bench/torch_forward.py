#!/usr/bin/python3
"""
PyTorch side of bench/calibrate-vs-torch.ts: the calibration forward (embedding → decoder layers
up to the last MoE layer, routing counted) of scripts/torch_reference.py over the same windows,
or with --eval the evaluation (every layer, the lm_head and the next-token loss: its perplexity
protocol). Prints JSON: load and forward seconds, tokens, routing counts (to cross-check the TS
counts) or the mean NLL (to cross-check the TS loss).

  /usr/bin/python3 bench/torch_forward.py --model DIR --ids windows.i32 --seq-len L [--threads N] [--eval]
"""
import argparse
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
import torch_reference as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--ids", required=True)
    ap.add_argument("--seq-len", type=int, required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--eval", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model = ref.Model(args.model)
    load = time.perf_counter() - t0
    ids = torch.from_numpy(np.fromfile(args.ids, dtype="<i4").astype(np.int64)).view(-1, args.seq_len)
    if args.eval:
        flat = ids.reshape(-1).tolist()
        windows = ids.shape[0]
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            result = ref.perplexity(model, flat, args.seq_len, batch=windows)
            times.append(time.perf_counter() - t0)
        json.dump({"loadSeconds": load, "forwardSeconds": min(times), "allForwardSeconds": times, "tokens": int(ids.numel()),
                   "threads": torch.get_num_threads(), "torch": torch.__version__, "meanNll": result["meanNll"]}, sys.stdout)
        return
    last_moe = max(model.cfg.moe_layers)
    times = []
    for _ in range(args.repeats):
        counter = ref.RoutingCounter()
        t0 = time.perf_counter()
        model.hidden(ids, torch.ones_like(ids), counter, layers=last_moe + 1)
        times.append(time.perf_counter() - t0)
    json.dump({"loadSeconds": load, "forwardSeconds": min(times), "allForwardSeconds": times, "tokens": int(ids.numel()),
               "threads": torch.get_num_threads(), "torch": torch.__version__,
               "counts": {str(k): v.tolist() for k, v in sorted(counter.counts.items())}}, sys.stdout)


if __name__ == "__main__":
    main()
