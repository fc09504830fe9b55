#!/usr/bin/python3
"""
Independent PyTorch reference for the rfid-moe forward pass (run with Debian's /usr/bin/python3,
torch 1.13; transformers is NOT used). It shares no code with the TypeScript side:

- safetensors are parsed here from the raw bytes (header JSON + numpy.frombuffer; BF16 decoded
  as uint16 << 16, F16 via numpy.float16);
- the decoder mirrors Hugging Face's modeling code for each family (modeling_mixtral.py,
  modeling_qwen2_moe.py, modeling_qwen3_moe.py, modeling_olmoe.py, DeepSeek-MoE's remote code):
  RMSNorm in f32, rotate_half RoPE, GQA, Qwen3 per-head q/k norm, OLMoE whole-projection q/k norm
  (+ clip_qkv), Qwen2-MoE q/k/v biases, causal + key-padding mask, softmax routing in f32,
  top-k, norm_topk_prob (always on for Mixtral), routed_scaling_factor, Qwen2-MoE's
  sigmoid-gated shared expert, DeepSeek's ungated shared experts, dense MLP layers.

Sub-commands:
  logits  --model DIR --ids JSON         logits for a padded batch + routing counts (valid tokens only)
  ppl     --model DIR --ids FILE.i32 --seq-len L [--max-windows N]
                                        perplexity over non-overlapping windows (docs/method.md protocol)
Used as a module by scripts/gen_runtime_golden.py and bench/torch_forward.py.
"""
import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch
import torch.nn.functional as F

torch.set_grad_enabled(False)

# ----------------------------------------------------------------------------------------------
# safetensors reading (own parser)


def _decode(dtype, raw, shape):
    if dtype == "F32":
        arr = np.frombuffer(raw, dtype="<f4")
    elif dtype == "F64":
        arr = np.frombuffer(raw, dtype="<f8").astype(np.float32)
    elif dtype == "F16":
        arr = np.frombuffer(raw, dtype="<f2").astype(np.float32)
    elif dtype == "BF16":
        u16 = np.frombuffer(raw, dtype="<u2").astype(np.uint32)
        arr = (u16 << 16).view(np.float32)
    else:
        raise ValueError("unsupported dtype %s" % dtype)
    return arr.reshape(shape).copy()


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n].decode("utf-8"))
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        out[name] = _decode(info["dtype"], data[base + begin : base + end], info["shape"])
    return out


def load_checkpoint(model_dir):
    """All tensors of a checkpoint as f32 torch tensors, plus the parsed config.json."""
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    tensors = {}
    for name in files:
        for k, v in read_safetensors(os.path.join(model_dir, name)).items():
            tensors[k] = torch.from_numpy(v)
    return config, tensors


# ----------------------------------------------------------------------------------------------
# model


class Cfg:
    """The hyper-parameters each family's modeling code reads, from config.json keys."""

    def __init__(self, c):
        t = c["model_type"]
        self.family = t
        self.hidden = c["hidden_size"]
        self.layers = c["num_hidden_layers"]
        self.heads = c["num_attention_heads"]
        self.kv_heads = c.get("num_key_value_heads") or self.heads
        self.head_dim = c.get("head_dim") or self.hidden // self.heads
        self.eps = c.get("rms_norm_eps", 1e-6)
        self.theta = c.get("rope_theta", 10000.0)
        self.vocab = c["vocab_size"]
        self.tied = bool(c.get("tie_word_embeddings", False))
        self.clip_qkv = c.get("clip_qkv")
        self.sliding_window = c.get("sliding_window") if t == "mixtral" else None
        self.routed_scale = 1.0
        self.qkv_bias = t == "qwen2_moe"
        if t == "mixtral":
            self.experts = c["num_local_experts"]
            self.norm_topk = True
            self.moe_layers = set(range(self.layers))
        elif t in ("qwen2_moe", "qwen3_moe"):
            self.experts = c["num_experts"]
            self.norm_topk = bool(c.get("norm_topk_prob", False))
            only = set(c.get("mlp_only_layers") or [])
            step = c.get("decoder_sparse_step", 1)
            self.moe_layers = {l for l in range(self.layers) if l not in only and self.experts > 0 and (l + 1) % step == 0}
        elif t == "olmoe":
            self.experts = c["num_experts"]
            self.norm_topk = bool(c.get("norm_topk_prob", False))
            self.moe_layers = set(range(self.layers))
        elif t == "deepseek":
            self.experts = c["n_routed_experts"]
            self.norm_topk = bool(c.get("norm_topk_prob", False))
            self.routed_scale = float(c.get("routed_scaling_factor", 1.0))
            first = c.get("first_k_dense_replace", 0)
            freq = c.get("moe_layer_freq", 1)
            self.moe_layers = {l for l in range(self.layers) if l >= first and l % freq == 0}
        else:
            raise SystemExit("family %s is not implemented by the reference" % t)
        self.top_k = c["num_experts_per_tok"]
        self.qk_norm = {"qwen3_moe": "per-head", "olmoe": "whole"}.get(t, "none")
        if t == "mixtral":
            self.mixer = "block_sparse_moe"
            self.expert_names = ("w1", "w3", "w2")
        else:
            self.mixer = "mlp"
            self.expert_names = ("gate_proj", "up_proj", "down_proj")


def rms_norm(x, w, eps):
    # HF *RMSNorm: variance in f32, x * rsqrt(var + eps), then weight *
    var = x.pow(2).mean(-1, keepdim=True)
    return w * (x * torch.rsqrt(var + eps))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_cos_sin(cfg, length):
    inv_freq = 1.0 / (cfg.theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.int64).float() / cfg.head_dim))
    pos = torch.arange(length, dtype=torch.float32)
    freqs = torch.outer(pos, inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def linear(x, W, b=None):
    return F.linear(x, W, b)


def swiglu(x, g, u, d):
    return linear(F.silu(linear(x, g)) * linear(x, u), d)


class RoutingCounter:
    """Top-k counts per MoE layer over valid (unpadded) tokens; optionally the f64 Gram matrix
    X^T X of each expert's input rows (valid tokens routed to it) for the layers in gram_layers."""

    def __init__(self, gram_layers=()):
        self.counts = {}
        self.tokens = {}
        self.gram_layers = set(gram_layers)
        self.grams = {}

    def add(self, layer, topk_idx, valid, num_experts):
        sel = topk_idx[valid.reshape(-1)]
        c = torch.bincount(sel.reshape(-1), minlength=num_experts)
        self.counts[layer] = (self.counts.get(layer, torch.zeros(num_experts, dtype=torch.int64)) + c)
        self.tokens[layer] = self.tokens.get(layer, 0) + int(valid.sum())


class Model:
    def __init__(self, model_dir):
        raw, self.t = load_checkpoint(model_dir)
        self.cfg = Cfg(raw)
        self.raw = raw

    def w(self, name):
        return self.t[name]

    def attention(self, l, x, mask, cos, sin):
        cfg, p = self.cfg, "model.layers.%d.self_attn." % l
        B, L, _ = x.shape
        bias = (lambda n: self.t.get(p + n + ".bias")) if cfg.qkv_bias else (lambda n: None)
        q = linear(x, self.w(p + "q_proj.weight"), bias("q_proj"))
        k = linear(x, self.w(p + "k_proj.weight"), bias("k_proj"))
        v = linear(x, self.w(p + "v_proj.weight"), bias("v_proj"))
        if cfg.qk_norm == "whole":  # OLMoE: over the whole projection, before the reshape
            q = rms_norm(q, self.w(p + "q_norm.weight"), cfg.eps)
            k = rms_norm(k, self.w(p + "k_norm.weight"), cfg.eps)
        if cfg.clip_qkv is not None:
            q, k, v = (t.clamp(-cfg.clip_qkv, cfg.clip_qkv) for t in (q, k, v))
        q = q.view(B, L, cfg.heads, cfg.head_dim)
        k = k.view(B, L, cfg.kv_heads, cfg.head_dim)
        v = v.view(B, L, cfg.kv_heads, cfg.head_dim)
        if cfg.qk_norm == "per-head":  # Qwen3: over head_dim after the reshape
            q = rms_norm(q, self.w(p + "q_norm.weight"), cfg.eps)
            k = rms_norm(k, self.w(p + "k_norm.weight"), cfg.eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        rep = cfg.heads // cfg.kv_heads
        k = k.repeat_interleave(rep, dim=1)
        v = v.repeat_interleave(rep, dim=1)
        scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(cfg.head_dim)
        scores = scores + mask
        probs = F.softmax(scores, dim=-1, dtype=torch.float32)
        out = torch.matmul(probs, v).transpose(1, 2).reshape(B, L, cfg.heads * cfg.head_dim)
        return linear(out, self.w(p + "o_proj.weight"))

    def moe(self, l, x, valid, counter):
        cfg = self.cfg
        p = "model.layers.%d.%s." % (l, cfg.mixer)
        B, L, H = x.shape
        flat = x.reshape(-1, H)
        logits = linear(flat, self.w(p + "gate.weight"))
        probs = F.softmax(logits, dim=1, dtype=torch.float32)
        topw, topi = torch.topk(probs, cfg.top_k, dim=-1)
        if cfg.norm_topk:
            denom = topw.sum(dim=-1, keepdim=True)
            if cfg.family == "deepseek":
                denom = denom + 1e-20
            topw = topw / denom
        topw = topw * cfg.routed_scale
        if counter is not None:
            counter.add(l, topi, valid, cfg.experts)
        out = torch.zeros_like(flat)
        g, u, d = cfg.expert_names
        for e in range(cfg.experts):
            tok, slot = torch.where(topi == e)
            if tok.numel() == 0:
                continue
            xe = flat[tok]
            if counter is not None and l in counter.gram_layers:
                xv = xe[valid.reshape(-1)[tok]].double()
                counter.grams[(l, e)] = (xv.T @ xv, int(xv.shape[0]))
            ye = swiglu(xe, self.w(p + "experts.%d.%s.weight" % (e, g)), self.w(p + "experts.%d.%s.weight" % (e, u)),
                        self.w(p + "experts.%d.%s.weight" % (e, d)))
            out.index_add_(0, tok, ye * topw[tok, slot, None])
        if cfg.family == "qwen2_moe" and (p + "shared_expert.gate_proj.weight") in self.t:
            s = swiglu(flat, self.w(p + "shared_expert.gate_proj.weight"), self.w(p + "shared_expert.up_proj.weight"),
                       self.w(p + "shared_expert.down_proj.weight"))
            out = out + torch.sigmoid(linear(flat, self.w(p + "shared_expert_gate.weight"))) * s
        if cfg.family == "deepseek" and (p + "shared_experts.gate_proj.weight") in self.t:
            out = out + swiglu(flat, self.w(p + "shared_experts.gate_proj.weight"), self.w(p + "shared_experts.up_proj.weight"),
                               self.w(p + "shared_experts.down_proj.weight"))
        return out.reshape(B, L, H)

    def dense_mlp(self, l, x):
        p = "model.layers.%d.mlp." % l
        return swiglu(x, self.w(p + "gate_proj.weight"), self.w(p + "up_proj.weight"), self.w(p + "down_proj.weight"))

    def hidden(self, ids, attn_mask, counter=None, layers=None):
        """Final-normed hidden states [B, L, H]; attn_mask [B, L] (1 valid, 0 padding). With
        `layers`, only the first `layers` decoder layers run and the un-normed state is returned
        (calibration needs nothing after the last MoE layer)."""
        cfg = self.cfg
        B, L = ids.shape
        x = self.w("model.embed_tokens.weight")[ids]
        cos, sin = rope_cos_sin(cfg, L)
        neg = torch.finfo(torch.float32).min
        i = torch.arange(L)
        allowed = i[None, :] <= i[:, None]
        if cfg.sliding_window is not None:
            allowed = allowed & ((i[:, None] - i[None, :]) < cfg.sliding_window)
        allowed = allowed[None, None, :, :] & attn_mask.bool()[:, None, None, :]
        mask = torch.where(allowed, torch.tensor(0.0), torch.tensor(neg))
        valid = attn_mask.bool()
        for l in range(cfg.layers if layers is None else layers):
            p = "model.layers.%d." % l
            h = rms_norm(x, self.w(p + "input_layernorm.weight"), cfg.eps)
            x = x + self.attention(l, h, mask, cos, sin)
            h = rms_norm(x, self.w(p + "post_attention_layernorm.weight"), cfg.eps)
            x = x + (self.moe(l, h, valid, counter) if l in cfg.moe_layers else self.dense_mlp(l, h))
        if layers is not None:
            return x
        return rms_norm(x, self.w("model.norm.weight"), cfg.eps)

    def lm_head(self):
        return self.w("model.embed_tokens.weight") if self.cfg.tied else self.w("lm_head.weight")

    def logits(self, ids, attn_mask, counter=None):
        return linear(self.hidden(ids, attn_mask, counter), self.lm_head())


def perplexity(model, ids, seq_len, max_windows=None, batch=16):
    """docs/method.md protocol: non-overlapping windows of seq_len, the remainder dropped, mean NLL
    over every predicted token (seq_len - 1 per window), PPL = exp(mean)."""
    n = len(ids) // seq_len
    if max_windows is not None:
        n = min(n, max_windows)
    total, count = 0.0, 0
    W = model.lm_head()
    for s in range(0, n, batch):
        w = torch.tensor(np.asarray(ids[s * seq_len : min(n, s + batch) * seq_len], dtype=np.int64)).view(-1, seq_len)
        h = model.hidden(w, torch.ones_like(w))
        logits = linear(h[:, :-1], W)
        nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1), reduction="sum")
        total += float(nll.double())
        count += w.shape[0] * (seq_len - 1)
    return {"windows": n, "tokens": count, "meanNll": total / count, "perplexity": math.exp(total / count)}


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("logits")
    a.add_argument("--model", required=True)
    a.add_argument("--ids", required=True, help='JSON {"ids": [[...]], "mask": [[...]]}')
    b = sub.add_parser("ppl")
    b.add_argument("--model", required=True)
    b.add_argument("--ids", required=True, help="little-endian int32 token ids")
    b.add_argument("--seq-len", type=int, required=True)
    b.add_argument("--max-windows", type=int)
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    model = Model(args.model)
    if args.cmd == "logits":
        with open(args.ids) as f:
            spec = json.load(f)
        ids = torch.tensor(spec["ids"], dtype=torch.int64)
        mask = torch.tensor(spec["mask"], dtype=torch.int64)
        counter = RoutingCounter()
        logits = model.logits(ids, mask, counter)
        json.dump({"logits": logits.tolist(), "counts": {str(k): v.tolist() for k, v in counter.counts.items()}}, sys.stdout)
    else:
        ids = np.fromfile(args.ids, dtype="<i4")
        json.dump(perplexity(model, ids, args.seq_len, args.max_windows), sys.stdout)


if __name__ == "__main__":
    main()
