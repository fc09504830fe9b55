#!/usr/bin/python3
"""
Writes the tiny per-family checkpoints under test/golden/runtime/<name>/ (seeded numpy, exact
Hugging Face names and config.json keys, own safetensors writer) and the PyTorch reference's
logits and routing counts for a right-padded batch into test/golden/runtime/families.json.

Do not run by hand: `node --import tsx scripts/gen-runtime-golden.ts` runs this first, then the
perplexity golden (which needs the TypeScript tokenizer and fixture generator).
"""
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch_reference as ref  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "golden", "runtime")

# ----------------------------------------------------------------------------------------------
# safetensors writer (canonical: metadata first, dtype-descending then name order, padded to 8)

_DTYPE_RANK = {"F16": 0, "BF16": 1, "F32": 2}


def _encode(arr, dtype):
    a = np.ascontiguousarray(arr, dtype=np.float32)
    if dtype == "F32":
        return a.astype("<f4").tobytes()
    if dtype == "F16":
        return a.astype("<f2").tobytes()
    if dtype == "BF16":  # round to nearest even
        u = a.view(np.uint32).astype(np.uint64)
        r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
        return r.astype("<u2").tobytes()
    raise ValueError(dtype)


def write_safetensors(path, tensors, dtype):
    names = sorted(tensors, key=lambda n: (-_DTYPE_RANK[dtype], n))
    header = {"__metadata__": {"format": "pt"}}
    blobs, off = [], 0
    for n in names:
        b = _encode(tensors[n], dtype)
        header[n] = {"dtype": dtype, "shape": list(tensors[n].shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    os.replace(tmp, path)


def write_checkpoint(dirname, config, tensors, dtype, shards=1):
    os.makedirs(dirname, exist_ok=True)
    for f in os.listdir(dirname):
        os.remove(os.path.join(dirname, f))
    with open(os.path.join(dirname, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    if shards == 1:
        write_safetensors(os.path.join(dirname, "model.safetensors"), tensors, dtype)
        return
    names = sorted(tensors)
    per = (len(names) + shards - 1) // shards
    weight_map, total = {}, 0
    for s in range(shards):
        fname = "model-%05d-of-%05d.safetensors" % (s + 1, shards)
        part = {n: tensors[n] for n in names[s * per : (s + 1) * per]}
        write_safetensors(os.path.join(dirname, fname), part, dtype)
        for n in part:
            weight_map[n] = fname
            total += part[n].size * (4 if dtype == "F32" else 2)
    with open(os.path.join(dirname, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": weight_map}, f, indent=2)


# ----------------------------------------------------------------------------------------------
# tiny models

H, V, E, P = 32, 64, 8, 16


class Gen:
    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)

    def lin(self, out_f, in_f, gain=1.0):
        return (self.rng.standard_normal((out_f, in_f)) * gain / np.sqrt(in_f)).astype(np.float32)

    def norm(self, n):
        return (1.0 + 0.2 * self.rng.standard_normal(n)).astype(np.float32)

    def vec(self, n, scale=0.1):
        return (scale * self.rng.standard_normal(n)).astype(np.float32)


def attention_tensors(g, p, heads, kv, hd, bias=False, qk_norm="none"):
    t = {
        p + "q_proj.weight": g.lin(heads * hd, H),
        p + "k_proj.weight": g.lin(kv * hd, H),
        p + "v_proj.weight": g.lin(kv * hd, H),
        p + "o_proj.weight": g.lin(H, heads * hd),
    }
    if bias:
        for n, w in (("q", heads * hd), ("k", kv * hd), ("v", kv * hd)):
            t[p + n + "_proj.bias"] = g.vec(w, 0.3)
    if qk_norm == "per-head":
        t[p + "q_norm.weight"], t[p + "k_norm.weight"] = g.norm(hd), g.norm(hd)
    if qk_norm == "whole":
        t[p + "q_norm.weight"], t[p + "k_norm.weight"] = g.norm(heads * hd), g.norm(kv * hd)
    return t


def mlp_tensors(g, p, width, names=("gate_proj", "up_proj", "down_proj")):
    return {p + names[0] + ".weight": g.lin(width, H), p + names[1] + ".weight": g.lin(width, H),
            p + names[2] + ".weight": g.lin(H, width)}


def build(family, seed, layers=3, tied=False, extra=None):
    """Returns (config, tensors) for one family in exact HF layout."""
    g = Gen(seed)
    heads, kv, hd = 4, 2, 8
    top_k = 2
    cfg = {"hidden_size": H, "num_hidden_layers": layers, "num_attention_heads": heads, "num_key_value_heads": kv,
           "vocab_size": V, "rms_norm_eps": 1e-6, "rope_theta": 10000.0, "max_position_embeddings": 256,
           "tie_word_embeddings": tied, "hidden_act": "silu", "num_experts_per_tok": top_k, "pad_token_id": 0,
           "bos_token_id": 1, "eos_token_id": 2}
    moe_layers, mixer, enames, dense_w = set(range(layers)), "mlp", ("gate_proj", "up_proj", "down_proj"), 0
    bias, qk = False, "none"
    if family == "mixtral":
        cfg.update(model_type="mixtral", architectures=["MixtralForCausalLM"], intermediate_size=P,
                   num_local_experts=E, sliding_window=None, router_jitter_noise=0.0)
        mixer, enames = "block_sparse_moe", ("w1", "w3", "w2")
    elif family == "qwen2_moe":
        top_k = 3
        cfg.update(model_type="qwen2_moe", architectures=["Qwen2MoeForCausalLM"], intermediate_size=24,
                   moe_intermediate_size=P, shared_expert_intermediate_size=40, num_experts=E, num_experts_per_tok=top_k,
                   norm_topk_prob=False, decoder_sparse_step=1, mlp_only_layers=[1], use_sliding_window=False)
        moe_layers, dense_w, bias = {0, 2}, 24, True
    elif family == "qwen3_moe":
        heads, kv, hd = 4, 1, 16  # head_dim != hidden / heads, GQA 4:1
        cfg.update(model_type="qwen3_moe", architectures=["Qwen3MoeForCausalLM"], num_attention_heads=heads,
                   num_key_value_heads=kv, head_dim=hd, intermediate_size=48, moe_intermediate_size=P, num_experts=E,
                   norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[], attention_bias=False)
        qk = "per-head"
    elif family == "olmoe":
        kv = heads
        cfg.update(model_type="olmoe", architectures=["OlmoeForCausalLM"], num_key_value_heads=kv, intermediate_size=P,
                   num_experts=E, norm_topk_prob=False, clip_qkv=None)
        qk = "whole"
    elif family == "deepseek":
        top_k = 3
        cfg.update(model_type="deepseek", architectures=["DeepseekForCausalLM"], intermediate_size=40,
                   moe_intermediate_size=P, n_routed_experts=E, n_shared_experts=2, num_experts_per_tok=top_k,
                   first_k_dense_replace=1, moe_layer_freq=1, norm_topk_prob=False, scoring_func="softmax",
                   topk_method="greedy")
        moe_layers, dense_w = set(range(1, layers)), 40
    cfg.update(extra or {})
    t = {"model.embed_tokens.weight": (g.rng.standard_normal((V, H))).astype(np.float32),
         "model.norm.weight": g.norm(H)}
    if not tied:
        t["lm_head.weight"] = g.lin(V, H, 2.0)
    for l in range(layers):
        p = "model.layers.%d." % l
        t[p + "input_layernorm.weight"] = g.norm(H)
        t[p + "post_attention_layernorm.weight"] = g.norm(H)
        t.update(attention_tensors(g, p + "self_attn.", heads, kv, hd, bias, qk))
        if l in moe_layers:
            m = p + mixer + "."
            t[m + "gate.weight"] = g.lin(E, H, 3.0)
            for e in range(E):
                t.update(mlp_tensors(g, m + "experts.%d." % e, P, enames))
            if family == "qwen2_moe":
                t.update(mlp_tensors(g, m + "shared_expert.", 40))
                t[m + "shared_expert_gate.weight"] = g.lin(1, H, 2.0)
            if family == "deepseek":
                t.update(mlp_tensors(g, m + "shared_experts.", 2 * P))
        else:
            t.update(mlp_tensors(g, p + "mlp.", dense_w))
    return cfg, t


# name, family, dtype, shards, tied, extra config
CASES = [
    ("mixtral", "mixtral", "F32", 1, False, None),
    ("mixtral-bf16-tied", "mixtral", "BF16", 1, True, None),
    ("mixtral-sliding", "mixtral", "F32", 1, False, {"sliding_window": 5}),
    ("qwen2_moe", "qwen2_moe", "F32", 1, False, None),
    ("qwen3_moe-f16", "qwen3_moe", "F16", 1, False, None),
    ("olmoe", "olmoe", "F32", 1, False, None),
    ("olmoe-clip", "olmoe", "F32", 1, False, {"clip_qkv": 1.5, "norm_topk_prob": True}),
    ("deepseek-sharded", "deepseek", "F32", 2, False, None),
]

# per-expert input Gram matrices X^T X checked for these (case, layer) and experts
GRAM_LAYERS = {"mixtral": (1,), "qwen2_moe": (2,)}
GRAM_EXPERTS = (0, 3)

# a right-padded batch: 12 valid tokens, then 7 valid + 5 padding (id 0)
IDS = [[5, 17, 42, 3, 60, 9, 33, 33, 12, 48, 7, 21], [8, 61, 30, 2, 19, 44, 27, 0, 0, 0, 0, 0]]
MASK = [[1] * 12, [1] * 7 + [0] * 5]


def main():
    torch.manual_seed(0)
    golden = {"generator": "scripts/gen-runtime-golden.py (PyTorch %s)" % torch.__version__, "ids": IDS, "mask": MASK,
              "cases": []}
    for i, (name, family, dtype, shards, tied, extra) in enumerate(CASES):
        cfg, tensors = build(family, 1000 + i, tied=tied, extra=extra)
        d = os.path.join(ROOT, name)
        write_checkpoint(d, cfg, tensors, dtype, shards)
        model = ref.Model(d)
        counter = ref.RoutingCounter(gram_layers=GRAM_LAYERS.get(name, ()))
        ids, mask = torch.tensor(IDS), torch.tensor(MASK)
        logits = model.logits(ids, mask, counter)
        valid = [logits[b, t].tolist() for b in range(len(IDS)) for t in range(len(IDS[b])) if MASK[b][t]]
        golden["cases"].append({
            "name": name, "family": family, "dtype": dtype,
            "logits": [[float("%.8g" % x) for x in row] for row in valid],
            "routing": {str(l): {"counts": c.tolist(), "tokens": counter.tokens[l]} for l, c in sorted(counter.counts.items())},
            "grams": [{"layer": l, "expert": e, "tokens": n, "gram": [float("%.12g" % v) for v in g.reshape(-1).tolist()]}
                      for (l, e), (g, n) in sorted(counter.grams.items()) if e in GRAM_EXPERTS],
        })
        print("wrote %s (%s, %s)" % (name, family, dtype), file=sys.stderr)
    with open(os.path.join(ROOT, "families.json.tmp"), "w") as f:
        json.dump(golden, f)
    os.replace(os.path.join(ROOT, "families.json.tmp"), os.path.join(ROOT, "families.json"))


if __name__ == "__main__":
    main()
