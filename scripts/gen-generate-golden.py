#!/usr/bin/env python3
"""
Greedy-decoding goldens for `generate`: for every shipped model, 5 prompts × 64 new tokens decoded
greedily by Hugging Face transformers (AutoModelForCausalLM in f32, its own KV cache), an
implementation independent of rfid-moe's runtime. Writes test/golden/generate/<model>.json with the
prompt ids (transformers' tokenizer), the 64 generated ids and, per step, the gap between the two
largest logits (so a near-tie, where f32 rounding may legitimately pick the other token, is visible).
The EOS token does not stop decoding here (the test passes stopTokenIds: []), so every run has 64.

    .venv/bin/python scripts/gen-generate-golden.py [MODEL_DIR ...]

Without arguments it regenerates the goldens of MODELS (adding a shipped model is one line).
"""
import json
import os
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
OUT = os.path.join(ROOT, "test", "golden", "generate")

MODELS = [
    "examples/models/mixtral-tiny-shakespeare",
]

PROMPTS = [
    "ROMEO:\n",
    "First Citizen:\nBefore we proceed any further, hear me speak.\n",
    "KING HENRY:\nWhat say you, my lords?",
    "The history of the",
    " = Valkyria Chronicles = \n",
]
NEW_TOKENS = 64


@torch.no_grad()
def greedy(model, ids, steps):
    out, gaps = [], []
    past = None
    inp = torch.tensor([ids], dtype=torch.long)
    for _ in range(steps):
        res = model(input_ids=inp, past_key_values=past, use_cache=True)
        past = res.past_key_values
        logits = res.logits[0, -1].float()
        top = torch.topk(logits, 2)
        nxt = int(torch.argmax(logits))
        out.append(nxt)
        gaps.append(float(top.values[0] - top.values[1]))
        inp = torch.tensor([[nxt]], dtype=torch.long)
    return out, gaps


def main():
    torch.manual_seed(0)
    torch.set_num_threads(int(os.environ.get("GOLDEN_THREADS", "1")))
    models = sys.argv[1:] or MODELS
    os.makedirs(OUT, exist_ok=True)
    for rel in models:
        path = os.path.join(ROOT, rel) if not os.path.isabs(rel) else rel
        tok = AutoTokenizer.from_pretrained(path)
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        model.eval()
        cases = []
        for prompt in PROMPTS:
            ids = tok(prompt)["input_ids"]
            tokens, gaps = greedy(model, ids, NEW_TOKENS)
            cases.append({"prompt": prompt, "promptIds": ids, "tokens": tokens, "top2Gap": gaps, "text": tok.decode(tokens, skip_special_tokens=True)})
        name = os.path.basename(os.path.normpath(path))
        doc = {
            "model": os.path.relpath(path, ROOT),
            "generator": "scripts/gen-generate-golden.py",
            "reference": f"transformers {transformers.__version__} AutoModelForCausalLM (f32), torch {torch.__version__}, greedy argmax with its KV cache",
            "newTokens": NEW_TOKENS,
            "cases": cases,
        }
        with open(os.path.join(OUT, f"{name}.json"), "w") as f:
            json.dump(doc, f, indent=1)
            f.write("\n")
        print(f"{name}: {len(cases)} prompts × {NEW_TOKENS} tokens, smallest top-2 gap {min(min(c['top2Gap']) for c in cases):.3g}", file=sys.stderr)


if __name__ == "__main__":
    main()
