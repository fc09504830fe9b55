#!/usr/bin/env python3
"""Next-token logits and per-layer routing counts of a model folder, computed by Hugging Face
transformers itself (AutoModelForCausalLM, f32, eager attention): the independent truth that
test/examples/demo-models.test.ts holds our runtime to.

    python scripts/hf_demo_logits.py MODEL_DIR IDS_JSON OUT_JSON

IDS_JSON holds {"ids": [[...], ...]} (equal-length sequences, no padding). OUT_JSON receives
{"logits": [[vocab floats] per position, sequences concatenated], "routing": {layer: counts},
"model_type": ..., "transformers": version}.
"""
import json
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM


def main() -> None:
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    model_dir, ids_path, out_path = sys.argv[1:]
    ids = torch.tensor(json.load(open(ids_path))["ids"], dtype=torch.long)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    cfg = model.config
    top_k = cfg.num_experts_per_tok
    n_experts = getattr(cfg, "num_local_experts", None) or cfg.num_experts
    with torch.no_grad():
        out = model(ids, output_router_logits=True)
    routing = {}
    for layer, router_logits in enumerate(out.router_logits):
        selected = torch.topk(torch.softmax(router_logits.float(), dim=-1), top_k, dim=-1).indices
        routing[str(layer)] = torch.bincount(selected.reshape(-1), minlength=n_experts).tolist()
    result = {"model_type": cfg.model_type, "transformers": transformers.__version__,
              "logits": out.logits.reshape(-1, out.logits.shape[-1]).tolist(), "routing": routing}
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
