#!/usr/bin/python3
"""Train the demo Mixtral-layout MoE shipped in examples/models/ and write its HF folder.

Run with Debian's python (torch 1.13, numpy; no transformers/safetensors needed):

    /usr/bin/python3 scripts/train_bpe_tokenizer.py --data <data dir>            # tokenizer first (seconds)
    /usr/bin/python3 scripts/train_demo_moe.py --data <data dir> --aux-per-layer  # train, export, evaluate, card

Training state is checkpointed to --work (default /tmp/rfid-moe-demo-train) every
--checkpoint-every steps; `--resume` continues from it, `--export-only` re-exports from it.
Progress goes to <work>/train.log.

The model is a faithful plain-torch Mixtral (HF `modeling_mixtral.py`): RMSNorm, RoPE with
rotate_half, grouped-query causal attention, router softmax in f32 -> top-k -> renormalise,
SwiGLU experts (w1 = gate, w3 = up, w2 = down), and HF's load-balancing auxiliary loss. Module
names equal HF's, so the state dict is written as-is. Data: the training part of Tiny
Shakespeare and of WikiText-2 *valid* (see train_bpe_tokenizer.TRAIN_FILES); WikiText-2 test and
PTB test are used only for the perplexities of the model card.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import struct
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import train_bpe_tokenizer as tok  # noqa: E402  (shared split + encoder)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO / "examples" / "models" / "mixtral-tiny-shakespeare"


# ============================================================================================
# Model
# ============================================================================================

@dataclass
class MixtralShape:
    vocab_size: int
    hidden_size: int = 128
    intermediate_size: int = 384
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    num_local_experts: int = 8
    num_experts_per_tok: int = 2
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_position_embeddings: int = 1024
    initializer_range: float = 0.02
    router_aux_loss_coef: float = 0.02
    tie_word_embeddings: bool = False

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def rope_cos_sin(seq_len: int, head_dim: int, theta: float) -> Tuple[torch.Tensor, torch.Tensor]:
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))
    freqs = torch.outer(torch.arange(seq_len, dtype=torch.float32), inv_freq)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


class Attention(nn.Module):
    def __init__(self, s: MixtralShape):
        super().__init__()
        self.s = s
        hd = s.head_dim
        self.q_proj = nn.Linear(s.hidden_size, s.num_attention_heads * hd, bias=False)
        self.k_proj = nn.Linear(s.hidden_size, s.num_key_value_heads * hd, bias=False)
        self.v_proj = nn.Linear(s.hidden_size, s.num_key_value_heads * hd, bias=False)
        self.o_proj = nn.Linear(s.num_attention_heads * hd, s.hidden_size, bias=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        s, hd = self.s, self.s.head_dim
        q = self.q_proj(x).view(b, t, s.num_attention_heads, hd).transpose(1, 2)
        k = self.k_proj(x).view(b, t, s.num_key_value_heads, hd).transpose(1, 2)
        v = self.v_proj(x).view(b, t, s.num_key_value_heads, hd).transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        # HF repeat_kv: query head h reads key/value head h // n_rep.
        n_rep = s.num_attention_heads // s.num_key_value_heads
        k = k.repeat_interleave(n_rep, dim=1)
        v = v.repeat_interleave(n_rep, dim=1)
        scores = (q @ k.transpose(-1, -2)) / math.sqrt(hd) + mask
        probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
        out = (probs @ v).transpose(1, 2).reshape(b, t, s.num_attention_heads * hd)
        return self.o_proj(out)


class Expert(nn.Module):
    def __init__(self, s: MixtralShape):
        super().__init__()
        self.w1 = nn.Linear(s.hidden_size, s.intermediate_size, bias=False)  # gate
        self.w2 = nn.Linear(s.intermediate_size, s.hidden_size, bias=False)  # down
        self.w3 = nn.Linear(s.hidden_size, s.intermediate_size, bias=False)  # up

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class SparseMoeBlock(nn.Module):
    def __init__(self, s: MixtralShape):
        super().__init__()
        self.s = s
        self.gate = nn.Linear(s.hidden_size, s.num_local_experts, bias=False)
        self.experts = nn.ModuleList(Expert(s) for _ in range(s.num_local_experts))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Returns (output, router logits [N, E], selected experts [N, k])."""
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        logits = self.gate(x)
        probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
        weights, selected = torch.topk(probs, self.s.num_experts_per_tok, dim=-1)
        weights = (weights / weights.sum(dim=-1, keepdim=True)).to(x.dtype)
        out = torch.zeros_like(x)
        # Dispatch: sort the (token, slot) assignments by expert, run each expert once.
        flat = selected.reshape(-1)
        order = torch.argsort(flat)
        counts = torch.bincount(flat, minlength=self.s.num_local_experts).tolist()
        flat_weights = weights.reshape(-1)
        start = 0
        for e, n in enumerate(counts):
            if n == 0:
                continue
            slots = order[start:start + n]
            start += n
            tokens = torch.div(slots, self.s.num_experts_per_tok, rounding_mode="floor")
            y = self.experts[e](x.index_select(0, tokens)) * flat_weights.index_select(0, slots).unsqueeze(-1)
            out.index_add_(0, tokens, y)
        return out.view(shape), logits, selected


class DecoderLayer(nn.Module):
    def __init__(self, s: MixtralShape):
        super().__init__()
        self.self_attn = Attention(s)
        self.block_sparse_moe = SparseMoeBlock(s)
        self.input_layernorm = RMSNorm(s.hidden_size, s.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(s.hidden_size, s.rms_norm_eps)

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        moe_out, logits, selected = self.block_sparse_moe(self.post_attention_layernorm(x))
        return x + moe_out, logits, selected


class MixtralModel(nn.Module):
    def __init__(self, s: MixtralShape):
        super().__init__()
        self.embed_tokens = nn.Embedding(s.vocab_size, s.hidden_size)
        self.layers = nn.ModuleList(DecoderLayer(s) for _ in range(s.num_hidden_layers))
        self.norm = RMSNorm(s.hidden_size, s.rms_norm_eps)


class MixtralForCausalLM(nn.Module):
    def __init__(self, s: MixtralShape):
        super().__init__()
        self.s = s
        self.model = MixtralModel(s)
        self.lm_head = nn.Linear(s.hidden_size, s.vocab_size, bias=False)
        if s.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.apply(self._init_weights)

    def _init_weights(self, m: nn.Module) -> None:  # HF MixtralPreTrainedModel._init_weights
        if isinstance(m, (nn.Linear, nn.Embedding)):
            m.weight.data.normal_(0.0, self.s.initializer_range)

    def forward(self, ids: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor], List[torch.Tensor]]:
        t = ids.shape[1]
        cos, sin = rope_cos_sin(t, self.s.head_dim, self.s.rope_theta)
        mask = torch.full((t, t), float("-inf")).triu(1)
        x = self.model.embed_tokens(ids)
        all_logits, all_selected = [], []
        for layer in self.model.layers:
            x, router_logits, selected = layer(x, cos, sin, mask)
            all_logits.append(router_logits)
            all_selected.append(selected)
        return self.lm_head(self.model.norm(x)), all_logits, all_selected


def load_balancing_loss(router_logits: Sequence[torch.Tensor], num_experts: int, top_k: int) -> torch.Tensor:
    """HF `load_balancing_loss_func` (no attention mask): all layers' tokens pooled, then
    E * sum_e (fraction of assignments to e per top-k slot) * (mean router probability of e)."""
    logits = torch.cat(list(router_logits), dim=0)
    probs = torch.softmax(logits, dim=-1, dtype=torch.float32)
    _, selected = torch.topk(probs, top_k, dim=-1)
    mask = F.one_hot(selected, num_experts).float()  # [N, k, E]
    tokens_per_expert = mask.mean(dim=0)              # [k, E]
    prob_per_expert = probs.mean(dim=0)                # [E]
    return (tokens_per_expert * prob_per_expert.unsqueeze(0)).sum() * num_experts


# ============================================================================================
# Data
# ============================================================================================

@dataclass
class Corpus:
    train: np.ndarray                   # all training tokens, documents separated by <|endoftext|>
    held_out: Dict[str, np.ndarray]     # per source file


def build_corpus(data_dir: Path, encoder: tok.BpeEncoder, eot_id: int) -> Corpus:
    train: List[int] = []
    held: Dict[str, np.ndarray] = {}
    for rel, train_text, held_text in tok.read_training_texts(data_dir):
        train.extend(encoder.encode(train_text))
        train.append(eot_id)
        held[rel] = np.asarray(encoder.encode(held_text), dtype=np.int64)
    return Corpus(np.asarray(train, dtype=np.int64), held)


def wikitext_test_text(data_dir: Path) -> str:
    """WikiText-2 test as HF `datasets` rows joined with "\\n\\n" (a blank raw line is the row "",
    any other line is kept with its "\\n") — the text whose GPT-2 token count is 287,644."""
    raw = (data_dir / "wikitext-2-raw" / "wiki.test.raw").read_text(encoding="utf-8")
    return "\n\n".join("" if line.strip() == "" else line for line in raw.splitlines(keepends=True))


# ============================================================================================
# Evaluation
# ============================================================================================

@torch.no_grad()
def evaluate(model: MixtralForCausalLM, ids: np.ndarray, window: int, batch: int = 16,
             usage: Optional[np.ndarray] = None) -> Tuple[float, int]:
    """Mean next-token NLL over non-overlapping windows of `window` tokens (no BOS; the last,
    shorter window counts too when it has >= 2 tokens). Optionally accumulates per-layer expert
    assignment counts into `usage` [layers, experts]. Returns (mean NLL, predicted tokens)."""
    model.eval()
    starts = list(range(0, len(ids), window))
    total, count = 0.0, 0
    for i in range(0, len(starts), batch):
        chunk = [ids[s:s + window] for s in starts[i:i + batch]]
        for length in sorted({len(c) for c in chunk}):  # the last window may be shorter
            group = [c for c in chunk if len(c) == length]
            if length < 2:
                continue
            x = torch.from_numpy(np.stack(group))
            logits, _, selected = model(x)
            nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), x[:, 1:].reshape(-1), reduction="sum")
            total += float(nll)
            count += x.shape[0] * (length - 1)
            if usage is not None:
                for layer, sel in enumerate(selected):
                    usage[layer] += np.bincount(sel.reshape(-1).numpy(), minlength=usage.shape[1])
    model.train()
    return total / count, count


# ============================================================================================
# Weight statistics
# ============================================================================================

def effective_rank(w: torch.Tensor) -> float:
    """exp(entropy of sigma^2 / sum sigma^2) — the definition used by the RFID-MoE method."""
    s = torch.linalg.svdvals(w.double())
    p = s.pow(2) / s.pow(2).sum()
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


def rank_for_energy(w: torch.Tensor, fraction: float = 0.9) -> int:
    s2 = torch.linalg.svdvals(w.double()).pow(2)
    return int((torch.cumsum(s2, 0) / s2.sum() < fraction).sum()) + 1


SPECTRUM_INDICES = (1, 8, 32, 64, 96, 128)


def mean_spectrum(mats: Sequence[torch.Tensor]) -> List[float]:
    """Mean over matrices of sigma_k / sigma_1 at the 1-based indices SPECTRUM_INDICES."""
    out = []
    for k in SPECTRUM_INDICES:
        vals = []
        for w in mats:
            sv = torch.linalg.svdvals(w.double())
            if k <= len(sv):
                vals.append(float(sv[k - 1] / sv[0]))
        out.append(float(np.mean(vals)) if vals else float("nan"))
    return out


def spectrum_report(final: Dict[str, torch.Tensor], init: Dict[str, torch.Tensor], s: MixtralShape) -> List[dict]:
    rows = []
    for label, key in (("w1 (gate)", "w1"), ("w3 (up)", "w3"), ("w2 (down)", "w2")):
        names = [f"model.layers.{l}.block_sparse_moe.experts.{e}.{key}.weight"
                 for l in range(s.num_hidden_layers) for e in range(s.num_local_experts)]
        rows.append({"matrix": f"{label} W0", "values": mean_spectrum([init[n] for n in names])})
        rows.append({"matrix": f"{label} W", "values": mean_spectrum([final[n] for n in names])})
    return rows


class ExpertInputGram:
    """Accumulates X^T X of every MoE layer's input (the post-attention RMSNorm output) through
    forward hooks, to say in how many directions the experts' inputs live."""

    def __init__(self, model: "MixtralForCausalLM"):
        h = model.s.hidden_size
        self.grams = [torch.zeros(h, h, dtype=torch.float64) for _ in model.model.layers]
        self.handles = [layer.post_attention_layernorm.register_forward_hook(self._hook(i))
                        for i, layer in enumerate(model.model.layers)]

    def _hook(self, i: int):
        def hook(_module, _inputs, output):
            x = output.detach().reshape(-1, output.shape[-1]).double()
            self.grams[i] += x.T @ x
        return hook

    def close(self) -> List[dict]:
        for handle in self.handles:
            handle.remove()
        rows = []
        for i, g in enumerate(self.grams):
            ev = torch.linalg.eigvalsh(g).clamp(min=0).flip(0)  # energies sigma^2, descending
            p = ev / ev.sum()
            nz = p[p > 0]
            rows.append({"layer": i, "rank90": int((torch.cumsum(p, 0) < 0.9).sum()) + 1,
                         "rank99": int((torch.cumsum(p, 0) < 0.99).sum()) + 1,
                         "erank": float(torch.exp(-(nz * nz.log()).sum()))})
        return rows


def drift_report(final: Dict[str, torch.Tensor], init: Dict[str, torch.Tensor], s: MixtralShape) -> List[dict]:
    """Per matrix kind: mean ||W - W0||_F / ||W0||_F, and mean effective rank / 90%-energy rank of
    W, W0 and W - W0 (a small effective rank of W - W0 would mean a low-rank learned update)."""
    kinds = {
        "experts w1 (gate)": "block_sparse_moe.experts.{e}.w1.weight",
        "experts w3 (up)": "block_sparse_moe.experts.{e}.w3.weight",
        "experts w2 (down)": "block_sparse_moe.experts.{e}.w2.weight",
        "router": "block_sparse_moe.gate.weight",
        "q_proj": "self_attn.q_proj.weight",
        "o_proj": "self_attn.o_proj.weight",
    }
    rows = []
    for kind, pattern in kinds.items():
        names = [f"model.layers.{l}.{pattern.format(e=e)}" for l in range(s.num_hidden_layers)
                 for e in range(s.num_local_experts if "{e}" in pattern else 1)]
        rel, er_w, er_0, er_d, r90_w, r90_0 = [], [], [], [], [], []
        for n in names:
            w, w0 = final[n].float(), init[n].float()
            rel.append(float((w - w0).norm() / w0.norm()))
            er_w.append(effective_rank(w))
            er_0.append(effective_rank(w0))
            er_d.append(effective_rank(w - w0))
            r90_w.append(rank_for_energy(w))
            r90_0.append(rank_for_energy(w0))
        rows.append({"kind": kind, "shape": list(final[names[0]].shape), "count": len(names),
                     "rel_change": float(np.mean(rel)), "erank_w": float(np.mean(er_w)),
                     "erank_w0": float(np.mean(er_0)), "erank_delta": float(np.mean(er_d)),
                     "rank90_w": float(np.mean(r90_w)), "rank90_w0": float(np.mean(r90_0)),
                     "norm_ratio": float(np.mean([final[n].float().norm() / init[n].float().norm() for n in names]))})
    # The RFID grouped matrix: 4 experts of one layer stacked (frequency order does not matter here).
    stack = [torch.cat([final[f"model.layers.{l}.block_sparse_moe.experts.{e}.w1.weight"] for e in range(4)], 0)
             for l in range(s.num_hidden_layers)]
    stack0 = [torch.cat([init[f"model.layers.{l}.block_sparse_moe.experts.{e}.w1.weight"] for e in range(4)], 0)
              for l in range(s.num_hidden_layers)]
    rows.append({"kind": "w1 of experts 0-3 stacked", "shape": list(stack[0].shape), "count": len(stack),
                 "rel_change": float(np.mean([(a - b).norm() / b.norm() for a, b in zip(stack, stack0)])),
                 "erank_w": float(np.mean([effective_rank(a) for a in stack])),
                 "erank_w0": float(np.mean([effective_rank(b) for b in stack0])),
                 "erank_delta": float(np.mean([effective_rank(a - b) for a, b in zip(stack, stack0)])),
                 "rank90_w": float(np.mean([rank_for_energy(a) for a in stack])),
                 "rank90_w0": float(np.mean([rank_for_energy(b) for b in stack0])),
                 "norm_ratio": float(np.mean([a.norm() / b.norm() for a, b in zip(stack, stack0)]))})
    return rows


# ============================================================================================
# HF files: safetensors (BF16) and config.json
# ============================================================================================

def f32_to_bf16_bits(a: np.ndarray) -> np.ndarray:
    """Top 16 bits of each f32 with round-to-nearest-even (inputs must be finite)."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    return rounded.astype(np.uint16)


def bf16_bits_to_f32(b: np.ndarray) -> np.ndarray:
    return (b.astype(np.uint32) << 16).view(np.float32)


def write_safetensors_bf16(path: Path, tensors: Dict[str, torch.Tensor]) -> None:
    """Canonical layout: __metadata__ first, tensors by dtype (all BF16) then name, contiguous
    data, header padded with spaces to a multiple of 8. Written to a temp file, then renamed."""
    header: Dict[str, object] = {"__metadata__": {"format": "pt"}}
    blobs: List[bytes] = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().float().contiguous()
        if not torch.isfinite(t).all():
            raise ValueError(f"tensor {name} holds non-finite values; refusing to write it")
        data = f32_to_bf16_bits(t.numpy()).astype("<u2").tobytes()
        header[name] = {"dtype": "BF16", "shape": list(t.shape), "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode("utf-8")
    head += b" " * ((8 - len(head) % 8) % 8)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "wb") as f:
        f.write(struct.pack("<Q", len(head)))
        f.write(head)
        for b in blobs:
            f.write(b)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600 files; this one is shipped
    os.replace(tmp, path)


def read_safetensors_bf16(path: Path) -> Dict[str, torch.Tensor]:
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        assert info["dtype"] == "BF16", info
        a, b = info["data_offsets"]
        bits = np.frombuffer(raw[base + a:base + b], dtype="<u2")
        out[name] = torch.from_numpy(bf16_bits_to_f32(bits).reshape(info["shape"]).copy())
    return out


def hf_config(s: MixtralShape, eot_id: int) -> dict:
    return {
        "architectures": ["MixtralForCausalLM"],
        "model_type": "mixtral",
        "attention_dropout": 0.0,
        "bos_token_id": eot_id,
        "eos_token_id": eot_id,
        "head_dim": s.head_dim,
        "hidden_act": "silu",
        "hidden_size": s.hidden_size,
        "initializer_range": s.initializer_range,
        "intermediate_size": s.intermediate_size,
        "max_position_embeddings": s.max_position_embeddings,
        "num_attention_heads": s.num_attention_heads,
        "num_experts_per_tok": s.num_experts_per_tok,
        "num_hidden_layers": s.num_hidden_layers,
        "num_key_value_heads": s.num_key_value_heads,
        "num_local_experts": s.num_local_experts,
        "output_router_logits": False,
        "rms_norm_eps": s.rms_norm_eps,
        "rope_theta": s.rope_theta,
        "router_aux_loss_coef": s.router_aux_loss_coef,
        "router_jitter_noise": 0.0,
        "sliding_window": None,
        "tie_word_embeddings": s.tie_word_embeddings,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.46.0",
        "use_cache": True,
        "vocab_size": s.vocab_size,
    }


# ============================================================================================
# Training
# ============================================================================================

@dataclass
class TrainSettings:
    steps: int
    batch: int
    seq_len: int
    lr: float
    min_lr_ratio: float
    warmup: int
    weight_decay: float
    grad_clip: float
    seed: int
    max_minutes: float
    # HF pools every layer's router into one balance term, so it only balances expert *index* e
    # across layers; on this model that left whole experts dead in some layers. Per-layer applies
    # the same formula to each layer and averages.
    aux_per_layer: bool = False


def progress(step: int, elapsed_s: float, t: TrainSettings) -> float:
    """How far through training we are: steps done or time spent, whichever is further. The
    machine this was trained on is shared, so a step's cost varies several-fold; tying the decay to
    the time budget as well lets the schedule end properly instead of being cut off mid-way."""
    return max(step / t.steps, elapsed_s / (60.0 * t.max_minutes))


def lr_at(step: int, frac: float, t: TrainSettings) -> float:
    """Linear warm-up over the first `warmup` steps, then cosine decay to min_lr_ratio * lr as
    the training progress `frac` goes from 0 to 1."""
    if step < t.warmup:
        return t.lr * (step + 1) / t.warmup
    frac = min(1.0, frac)
    return t.lr * (t.min_lr_ratio + (1 - t.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * frac)))


def make_optimizer(model: nn.Module, t: TrainSettings) -> torch.optim.Optimizer:
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]  # RMSNorm weights
    return torch.optim.AdamW([{"params": decay, "weight_decay": t.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=t.lr, betas=(0.9, 0.95), eps=1e-8,
                             foreach=True)  # one multi-tensor update instead of ~80 small ones: ~30% faster here


def save_atomic(obj: object, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    torch.save(obj, tmp)
    os.replace(tmp, path)


class Logger:
    def __init__(self, path: Path):
        self.path = path

    def __call__(self, msg: str) -> None:
        line = f"{time.strftime('%H:%M:%S')} {msg}"
        print(line, flush=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


def train(model: MixtralForCausalLM, corpus: Corpus, t: TrainSettings, work: Path, log: Logger,
          resume: bool, checkpoint_every: int, eval_every: int) -> dict:
    ckpt_path = work / "checkpoint.pt"
    opt = make_optimizer(model, t)
    gen = torch.Generator().manual_seed(t.seed + 1)
    state = {"step": 0, "history": [], "elapsed_s": 0.0, "tokens_seen": 0}
    if resume and ckpt_path.exists():
        ck = torch.load(ckpt_path)
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["optimizer"])
        gen.set_state(ck["generator"])
        state = ck["state"]
        log(f"resumed at step {state['step']}")
    s = model.s
    train_ids = torch.from_numpy(corpus.train)
    max_start = len(train_ids) - t.seq_len - 1
    started = time.time() - state["elapsed_s"]
    window_loss, window_aux, window_n = 0.0, 0.0, 0

    def checkpoint() -> None:
        state["elapsed_s"] = time.time() - started
        save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(), "generator": gen.get_state(),
                     "state": state, "shape": asdict(s), "settings": asdict(t)}, ckpt_path)

    model.train()
    done = False
    while not done:
        step = state["step"]
        lr = lr_at(step, progress(step, time.time() - started, t), t)
        for g in opt.param_groups:
            g["lr"] = lr
        starts = torch.randint(0, max_start, (t.batch,), generator=gen)
        seqs = torch.stack([train_ids[i:i + t.seq_len + 1] for i in starts.tolist()])
        x, y = seqs[:, :-1], seqs[:, 1:]
        logits, router_logits, _ = model(x)
        ce = F.cross_entropy(logits.reshape(-1, s.vocab_size), y.reshape(-1))
        if t.aux_per_layer:
            aux = torch.stack([load_balancing_loss([r], s.num_local_experts, s.num_experts_per_tok)
                               for r in router_logits]).mean()
        else:
            aux = load_balancing_loss(router_logits, s.num_local_experts, s.num_experts_per_tok)
        loss = ce + s.router_aux_loss_coef * aux
        opt.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip))
        opt.step()
        state["step"] = step + 1
        state["tokens_seen"] += t.batch * t.seq_len
        window_loss += float(ce)
        window_aux += float(aux)
        window_n += 1
        done = progress(state["step"], time.time() - started, t) >= 1.0
        if state["step"] % 25 == 0 or done:
            elapsed = time.time() - started
            log(f"step {state['step']}/{t.steps} ce {window_loss / window_n:.4f} aux {window_aux / window_n:.4f} "
                f"lr {lr:.2e} |g| {grad_norm:.2f} {elapsed / 60:.1f} min "
                f"({state['tokens_seen'] / elapsed:.0f} tok/s)")
            entry = {"step": state["step"], "lr": lr, "train_ce": window_loss / window_n, "aux": window_aux / window_n,
                     "tokens_seen": state["tokens_seen"], "minutes": elapsed / 60}
            if state["step"] % eval_every == 0 or done or state["step"] == 25:
                entry["val"] = {rel: evaluate(model, ids, t.seq_len)[0] for rel, ids in corpus.held_out.items()}
                log("  validation ce " + ", ".join(f"{k}: {v:.4f}" for k, v in entry["val"].items()))
            state["history"].append(entry)
            window_loss, window_aux, window_n = 0.0, 0.0, 0
        if state["step"] % checkpoint_every == 0 or done:
            checkpoint()
    state["elapsed_s"] = time.time() - started
    return state


# ============================================================================================
# Export: files, evaluation, model card
# ============================================================================================

def count_params(s: MixtralShape) -> Dict[str, int]:
    h, i, e, l, v, hd = s.hidden_size, s.intermediate_size, s.num_local_experts, s.num_hidden_layers, s.vocab_size, s.head_dim
    attn = l * (2 * h * s.num_attention_heads * hd + 2 * h * s.num_key_value_heads * hd)
    experts = l * e * 3 * h * i
    router = l * e * h
    norms = (2 * l + 1) * h
    emb = v * h * (1 if s.tie_word_embeddings else 2)
    total = attn + experts + router + norms + emb
    active = total - experts + l * s.num_experts_per_tok * 3 * h * i
    return {"total": total, "experts": experts, "attention": attn, "router": router, "norms": norms,
            "embeddings_and_lm_head": emb, "active_per_token": active}


def fmt_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def model_card(name: str, s: MixtralShape, t: TrainSettings, state: dict, corpus: Corpus, evals: dict,
               drift: List[dict], spectrum: List[dict], inputs: List[dict], usage: np.ndarray, usage_tokens: int,
               params: Dict[str, int], size_bytes: int) -> str:
    hist = state["history"]
    picks = sorted({h["step"] for h in hist if "val" in h})
    val_names = list(corpus.held_out)
    loss_rows = []
    for h in hist:
        if h["step"] in picks:
            loss_rows.append([h["step"], f"{h['tokens_seen'] / 1e6:.2f}", f"{h['train_ce']:.3f}",
                              *[f"{h['val'][k]:.3f}" for k in val_names], f"{h['aux']:.3f}", f"{h['minutes']:.1f}"])
    usage_share = usage / usage.sum(axis=1, keepdims=True)
    usage_rows = [[l, *[f"{100 * x:.1f}" for x in usage_share[l]], f"{usage_share[l].max() / usage_share[l].min():.1f}",
                   f"{usage_share[l].std() / usage_share[l].mean():.2f}"] for l in range(s.num_hidden_layers)]
    drift_rows = [[d["kind"], "×".join(map(str, d["shape"])), d["count"], f"{d['rel_change']:.2f}", f"{d['norm_ratio']:.2f}",
                   f"{d['erank_w0']:.1f}", f"{d['erank_w']:.1f}", f"{d['erank_delta']:.1f}",
                   f"{d['rank90_w0']:.1f}", f"{d['rank90_w']:.1f}"] for d in drift]
    ev = evals
    by_time = state["step"] < t.steps
    schedule = (f"the decay follows whichever is further along, steps (of {t.steps}) or time (of {t.max_minutes:g} minutes, "
                f"the machine being shared); here the time budget ended training"
                if by_time else f"the decay ran over the {t.steps} steps")
    return f"""# {name}

A small **Mixtral-layout** Mixture-of-Experts language model (`model_type: mixtral`,
`MixtralForCausalLM`), trained from scratch on CPU as the demo and test model of `rfid-moe`.
It is a toy: useful for exercising MoE compression end to end on real, trained weights with
uneven expert usage, not for generating good text.

Everything here is produced by committed scripts:
`scripts/train_bpe_tokenizer.py` (tokenizer), `scripts/train_demo_moe.py` (model, evaluation,
this card) and `scripts/check_demo_tokenizer.mjs` (checks that `@huggingface/tokenizers` encodes
exactly like the training encoder).

## Files

| file | what |
|---|---|
| `config.json` | HF `MixtralConfig` |
| `model.safetensors` | all weights, BF16 ({size_bytes / 1e6:.1f} MB), HF tensor names |
| `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json` | byte-level BPE, {s.vocab_size} ids |

## Data

Training text: Tiny Shakespeare (`tinyshakespeare/input.txt`, public domain) and the WikiText-2
**validation** split (`wikitext-2-raw/wiki.valid.raw`, CC BY-SA 3.0 / GFDL), from the project's
local data folder (not part of this repository; see the repository README). The last {int(tok.HELD_OUT_FRACTION * 100)}% of each file (cut at a line start) is held out
for validation and was used neither for the tokenizer nor for training. Training tokens:
{len(corpus.train):,}; held-out tokens: {", ".join(f"{k} {len(v):,}" for k, v in corpus.held_out.items())}.
WikiText-2 **test** and PTB **test** were never trained on; they are only evaluated below.

## Tokenizer

GPT-2-style byte-level BPE trained on the training text above: the GPT-2 split regex, 256 byte
symbols, {s.vocab_size - 257} merges, and `<|endoftext|>` = {s.vocab_size - 1} (used as BOS/EOS id in the
config and as the document separator in training; evaluation adds no BOS). `tokenizer.json`
is HF form (BPE model with `vocab` + `merges`, ByteLevel pre-tokenizer/decoder/post-processor).

## Architecture

{fmt_table(["key", "value"], [
        ["hidden_size", s.hidden_size], ["num_hidden_layers", s.num_hidden_layers],
        ["attention heads / kv heads / head_dim", f"{s.num_attention_heads} / {s.num_key_value_heads} / {s.head_dim} (GQA)"],
        ["experts per layer / per token", f"{s.num_local_experts} / {s.num_experts_per_tok}"],
        ["expert width (intermediate_size)", s.intermediate_size],
        ["vocab_size", s.vocab_size], ["rope_theta", s.rope_theta], ["rms_norm_eps", s.rms_norm_eps],
        ["max_position_embeddings (trained at)", f"{s.max_position_embeddings} ({t.seq_len})"],
        ["tie_word_embeddings", str(s.tie_word_embeddings).lower()],
        ["router_aux_loss_coef", s.router_aux_loss_coef]])}

Parameters: **{params['total']:,}** in total, of which experts {params['experts']:,}
({100 * params['experts'] / params['total']:.0f}%), attention {params['attention']:,}, routers {params['router']:,},
embeddings + lm_head {params['embeddings_and_lm_head']:,}, norms {params['norms']:,};
active per token {params['active_per_token']:,}.

## Training

Plain-torch Mixtral (same math as HF `modeling_mixtral.py`), f32, on a shared 2-core CPU.
AdamW (β = 0.9, 0.95; weight decay {t.weight_decay} on matrices), peak learning rate {t.lr:g}, {t.warmup} warm-up
steps then cosine decay to {t.min_lr_ratio:g}× ({schedule}), gradient clipping {t.grad_clip}, batch {t.batch} × {t.seq_len} tokens
(random windows of the training text), loss = cross-entropy + {s.router_aux_loss_coef} × HF load-balancing loss
({"computed per layer and averaged over the layers" if t.aux_per_layer else "HF's form: all layers' router outputs pooled"}),
initialisation N(0, {s.initializer_range}) as HF does. **{state['step']} steps, {state['tokens_seen']:,} tokens seen**
({state['tokens_seen'] / len(corpus.train):.1f} passes over the training text), {state['elapsed_s'] / 60:.0f} minutes.

Command (the schedule's time budget makes the step count depend on the machine's speed):
`/usr/bin/python3 scripts/train_demo_moe.py --steps {t.steps} --batch {t.batch} --seq-len {t.seq_len} --lr {t.lr:g} \
--warmup {t.warmup} --weight-decay {t.weight_decay:g} --max-minutes {t.max_minutes:g} --hidden {s.hidden_size} \
--intermediate {s.intermediate_size} --layers {s.num_hidden_layers} --experts {s.num_local_experts} \
--aux-coef {s.router_aux_loss_coef:g}{" --aux-per-layer" if t.aux_per_layer else ""} --seed {t.seed}`

Loss curve (cross-entropy in nats per token; train = mean over the preceding 25 steps; validation
= held-out text in non-overlapping {t.seq_len}-token windows):

{fmt_table(["step", "tokens (M)", "train", *[f"val {k.split('/')[0]}" for k in val_names], "aux", "minutes"], loss_rows)}

## Evaluation

Perplexity = exp(mean next-token NLL) over non-overlapping windows of {t.seq_len} tokens, no BOS, every
predicted token counted (a shorter last window included). WikiText-2 test: raw lines as HF rows
(blank line → "") joined with "\\n\\n". PTB test: `ptb.test.txt` as-is. Computed with the BF16
weights of `model.safetensors` (upcast to f32, f32 arithmetic); the f32 training weights in parentheses.

{fmt_table(["text", "tokens scored", "NLL", "perplexity"], [
        [k, f"{v['tokens']:,}", f"{v['nll']:.4f} ({v['nll_f32']:.4f})", f"{math.exp(v['nll']):.2f} ({math.exp(v['nll_f32']):.2f})"]
        for k, v in ev.items()])}

## How far the weights moved from initialisation

A model trained too briefly keeps its random initialisation plus a low-rank learned update, and
then every SVD compression method looks alike (see the repository's
[docs/method.md](../../../docs/method.md), "What the measurements here say"). Measured against the saved initial weights W0 (means over the matrices of each
kind; effective rank = exp(entropy of σ²/Σσ²), rank90 = singular values needed for 90% of the
energy):

{fmt_table(["matrix", "shape", "n", "‖W−W0‖/‖W0‖", "‖W‖/‖W0‖", "erank W0", "erank W", "erank (W−W0)", "rank90 W0", "rank90 W"], drift_rows)}

Singular spectrum of the expert matrices, σ_k / σ_1 (mean over the {s.num_hidden_layers * s.num_local_experts} experts):

{fmt_table(["matrix", *[f"k = {k}" for k in SPECTRUM_INDICES]], [[r["matrix"], *[f"{v:.3f}" for v in r["values"]]] for r in spectrum])}

Expert inputs (the post-attention RMSNorm output over the held-out text, {s.hidden_size} dimensions):
directions holding 90% / 99% of their energy, and effective rank.

{fmt_table(["layer", "rank90", "rank99", "erank"], [[r["layer"], r["rank90"], r["rank99"], f"{r['erank']:.1f}"] for r in inputs])}

## Expert usage

Share of top-{s.num_experts_per_tok} assignments per expert (%, uniform = {100 / s.num_local_experts:.1f}%) on the held-out
validation text ({usage_tokens:,} tokens), with max/min ratio and coefficient of variation:

{fmt_table(["layer", *[f"e{e}" for e in range(s.num_local_experts)], "max/min", "CV"], usage_rows)}

## Licence and attribution

Weights and tokenizer derive from Tiny Shakespeare (public domain) and WikiText-2
(Merity et al. 2016, CC BY-SA 3.0 / GFDL); keep this attribution with them.
"""


def export(model: MixtralForCausalLM, init_state: Dict[str, torch.Tensor], corpus: Corpus, t: TrainSettings,
           state: dict, data_dir: Path, out: Path, encoder: tok.BpeEncoder, eot_id: int, log: Logger,
           eval_max_tokens: int = 0) -> None:
    s = model.s
    out.mkdir(parents=True, exist_ok=True)
    weights = {k: v for k, v in model.state_dict().items()}
    if s.tie_word_embeddings:
        weights.pop("lm_head.weight")
    st_path = out / "model.safetensors"
    write_safetensors_bf16(st_path, weights)
    tok.write_json_atomic(out / "config.json", hf_config(s, eot_id))
    log(f"wrote {st_path} ({st_path.stat().st_size:,} bytes) and config.json")

    # BF16 check: our rounding equals torch's own f32 -> bf16 conversion.
    reread = read_safetensors_bf16(st_path)
    for name, w in weights.items():
        if not torch.equal(reread[name], w.to(torch.bfloat16).float()):
            raise AssertionError(f"BF16 rounding of {name} differs from torch's")

    texts = {"WikiText-2 test": wikitext_test_text(data_dir),
             "PTB test": (data_dir / "ptb" / "ptb.test.txt").read_text(encoding="utf-8")}
    f32_model = model
    bf16_model = MixtralForCausalLM(s)
    bf16_model.load_state_dict(reread, strict=not s.tie_word_embeddings)
    evals = {}
    for label, ids in [*((k, v) for k, v in corpus.held_out.items()), *((k, np.asarray(encoder.encode(v), dtype=np.int64)) for k, v in texts.items())]:
        if eval_max_tokens:
            ids = ids[:eval_max_tokens]
        nll, n = evaluate(bf16_model, ids, t.seq_len)
        nll32, _ = evaluate(f32_model, ids, t.seq_len)
        evals[label] = {"nll": nll, "nll_f32": nll32, "tokens": n}
        log(f"eval {label}: {n} tokens, NLL {nll:.4f} (f32 {nll32:.4f}), PPL {math.exp(nll):.2f}")

    usage = np.zeros((s.num_hidden_layers, s.num_local_experts), dtype=np.int64)
    usage_tokens = 0
    gram = ExpertInputGram(bf16_model)
    for ids in corpus.held_out.values():
        usage_tokens += len(ids)
        evaluate(bf16_model, ids, t.seq_len, usage=usage)
    inputs = gram.close()
    drift = drift_report(model.state_dict(), init_state, s)
    spectrum = spectrum_report(model.state_dict(), init_state, s)
    for d in drift:
        log(f"drift {d}")
    params = count_params(s)
    assert params["total"] == sum(w.numel() for w in weights.values()), "parameter count mismatch"
    card = model_card(out.name, s, t, state, corpus, evals, drift, spectrum, inputs, usage, usage_tokens, params,
                      st_path.stat().st_size)
    fd, tmp = tempfile.mkstemp(dir=out, prefix=".README.md.", suffix=".tmp")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(card)
    os.chmod(tmp, 0o644)
    os.replace(tmp, out / "README.md")
    summary = {"evals": evals, "usage": usage.tolist(), "drift": drift, "spectrum": spectrum, "expert_inputs": inputs, "params": params,
               "steps": state["step"], "tokens_seen": state["tokens_seen"]}
    (Path(log.path).parent / "summary.json").write_text(json.dumps(summary, indent=2))
    log(f"wrote {out / 'README.md'}; folder total {sum(p.stat().st_size for p in out.iterdir()):,} bytes")


def reexec_with_runtime_tuning() -> None:
    """Two settings that must be in the environment before the process starts, hence the re-exec:
    - glibc returns every large freed block to the OS and page-faults it back on the next step;
      on this 2-core box that cost ~20% of a step in system time (MALLOC_*_THRESHOLD_).
    - On a CPU shared with other jobs, OpenMP threads that spin while waiting burn the share
      that the working thread needs: measured 13.8 s/step with 2 spinning threads, 2.0 s with
      OMP_WAIT_POLICY=PASSIVE, 1.1 s with one thread (hence --threads 1 by default)."""
    if os.environ.get("RFID_MOE_TRAIN_REEXEC") is None:
        env = dict(os.environ, RFID_MOE_TRAIN_REEXEC="1", MALLOC_MMAP_THRESHOLD_=str(1 << 30),
                   MALLOC_TRIM_THRESHOLD_=str(1 << 30), OMP_WAIT_POLICY="PASSIVE")
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def main(argv: Optional[Sequence[str]] = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="folder holding tinyshakespeare/, wikitext-2-raw/ and ptb/")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="model folder (must already hold tokenizer.json)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/rfid-moe-demo-train"), help="checkpoints and log")
    ap.add_argument("--steps", type=int, default=2200)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq-len", type=int, default=256)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--min-lr-ratio", type=float, default=0.1)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--grad-clip", type=float, default=1.0)
    ap.add_argument("--hidden", type=int, default=128)
    ap.add_argument("--intermediate", type=int, default=384)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--experts", type=int, default=8)
    ap.add_argument("--aux-coef", type=float, default=0.02)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--aux-per-layer", action="store_true", help="balance each layer's experts (see TrainSettings)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (see reexec_with_runtime_tuning)")
    ap.add_argument("--checkpoint-every", type=int, default=100)
    ap.add_argument("--eval-every", type=int, default=200)
    ap.add_argument("--max-minutes", type=float, default=19.0,
                    help="time budget: the learning-rate decay ends at --steps or at this many minutes, whichever comes first")
    ap.add_argument("--resume", action="store_true", help="continue from <work>/checkpoint.pt")
    ap.add_argument("--export-only", action="store_true", help="skip training; export <work>/checkpoint.pt")
    ap.add_argument("--benchmark", type=int, default=0, help="time this many training steps and exit")
    ap.add_argument("--eval-max-tokens", type=int, default=0, help="smoke tests only: cut each evaluation text to this many tokens")
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    tokenizer_path = args.out / "tokenizer.json"
    if not tokenizer_path.is_file():
        sys.exit(f"error: {tokenizer_path} is missing; run scripts/train_bpe_tokenizer.py --out {args.out} first")
    args.work.mkdir(parents=True, exist_ok=True)
    log = Logger(args.work / "train.log")
    encoder = tok.BpeEncoder.from_tokenizer_json(tokenizer_path)
    eot_id = encoder.special_tokens[tok.END_OF_TEXT]
    vocab_size = max(encoder.id_to_token) + 1

    shape = MixtralShape(vocab_size=vocab_size, hidden_size=args.hidden, intermediate_size=args.intermediate,
                         num_hidden_layers=args.layers, num_local_experts=args.experts, router_aux_loss_coef=args.aux_coef)
    settings = TrainSettings(steps=args.steps, batch=args.batch, seq_len=args.seq_len, lr=args.lr,
                             min_lr_ratio=args.min_lr_ratio, warmup=args.warmup, weight_decay=args.weight_decay,
                             grad_clip=args.grad_clip, seed=args.seed, max_minutes=args.max_minutes,
                             aux_per_layer=args.aux_per_layer)
    torch.manual_seed(args.seed)
    model = MixtralForCausalLM(shape)
    init_path = args.work / "init.pt"
    if args.resume or args.export_only:
        init_state = torch.load(init_path)
        ck = torch.load(args.work / "checkpoint.pt")
        if ck["shape"] != asdict(shape):
            sys.exit(f"error: checkpoint shape {ck['shape']} differs from the arguments {asdict(shape)}")
        settings = TrainSettings(**ck["settings"])  # a resumed run keeps its original schedule
    else:
        init_state = {k: v.clone() for k, v in model.state_dict().items()}
        save_atomic(init_state, init_path)

    corpus = build_corpus(args.data, encoder, eot_id)
    log(f"corpus: {len(corpus.train):,} training tokens; held out " +
        ", ".join(f"{k} {len(v):,}" for k, v in corpus.held_out.items()))
    log(f"shape {asdict(shape)}; settings {asdict(settings)}; params {count_params(shape)}")

    if args.benchmark:
        bench = TrainSettings(**{**asdict(settings), "steps": args.benchmark, "max_minutes": 1e9})
        bench_dir = args.work / "bench"
        bench_dir.mkdir(exist_ok=True)
        t0 = time.time()
        train(model, corpus, bench, bench_dir, log, False, 10 ** 9, 10 ** 9)
        dt = time.time() - t0  # includes one validation pass at the end
        log(f"benchmark: {dt / args.benchmark:.2f} s/step, {args.benchmark * settings.batch * settings.seq_len / dt:.0f} tok/s")
        return

    if args.export_only:
        ck = torch.load(args.work / "checkpoint.pt")
        model.load_state_dict(ck["model"])
        state = ck["state"]
    else:
        state = train(model, corpus, settings, args.work, log, args.resume, args.checkpoint_every, args.eval_every)
    export(model, init_state, corpus, settings, state, args.data, args.out, encoder, eot_id, log, args.eval_max_tokens)


if __name__ == "__main__":
    reexec_with_runtime_tuning()
    main()
