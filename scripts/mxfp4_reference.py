#!/usr/bin/env python3
"""
An MXFP4 checkpoint as gpt-oss stores its experts, and the same experts dequantised by transformers
itself (transformers.integrations.mxfp4.convert_moe_packed_tensors, the conversion every CPU load of
gpt-oss goes through): the truth test/hf/mxfp4-transformers.test.ts compares rfid-moe's Mxfp4Store
with, bit for bit.

Reads one job as JSON from stdin:

  {"out": DIR, "seed": N, "experts": E, "hidden": H, "intermediate": I, "layers": L}

and writes
  DIR/mxfp4/config.json                    quantization_config {"quant_method": "mxfp4", ...}
  DIR/mxfp4/model-0000{1,2}-of-00002.safetensors + model.safetensors.index.json
      for each layer l: model.layers.{l}.mlp.experts.gate_up_proj_blocks U8 [E, 2I, H/32, 16],
      …gate_up_proj_scales U8 [E, 2I, H/32], …down_proj_blocks U8 [E, H, I/32, 16],
      …down_proj_scales U8 [E, H, I/32], the biases …gate_up_proj_bias [E, 2I] and
      …down_proj_bias [E, H] in BF16, and a BF16 router weight; the last layer's scales lie in
      the other shard than its blocks
  DIR/expected.safetensors                 every tensor as a BF16 reader sees it: gate_up_proj
      [E, H, 2I] and down_proj [E, I, H] from convert_moe_packed_tensors (BF16), the rest as stored

The blocks are random bytes (both nibbles, every code); the scales are random in 110..135 (the
range gpt-oss's experts use), with a few at the edges (0, 1, 254, 255): there code × 2^(s − 127)
overflows to ±inf (from 2^128) or is a BF16 subnormal, as torch's ldexp on the BF16 tensor gives.

Answers {"transformers": version, "torch": version, "tensors": [names]} on stdout.

With {"op": "quantize", "model": DIR, "out": DIR2} it instead rewrites the gpt-oss checkpoint in DIR
(one model.safetensors, experts stored as floats, hidden and intermediate sizes multiples of 32)
into DIR2 as gpt-oss's MXFP4 releases are stored: each expert tensor quantized group by group
(the power-of-two scale that brings the group's largest magnitude to at most 6, the nearest FP4
code), the rest copied, and config.json with quantization_config mxfp4. Any valid codes serve:
the test reads the same files in transformers and in rfid-moe.
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file
from transformers.integrations.mxfp4 import convert_moe_packed_tensors


FP4 = torch.tensor([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0])


def quantize(w: torch.Tensor):
    """[E, rows, cols] (cols a multiple of 32) → MXFP4 blocks [E, rows, cols/32, 16] and scales
    [E, rows, cols/32]: each group of 32 scaled by the power of two that brings its largest
    magnitude to at most 6, each value the nearest FP4 code (low nibble first)."""
    E, rows, cols = w.shape
    g = w.float().reshape(E, rows, cols // 32, 32)
    amax = g.abs().amax(-1).clamp(min=2.0**-120)
    exp = torch.ceil(torch.log2(amax / 6.0)).clamp(-127, 127)
    scaled = g / torch.pow(2.0, exp)[..., None]
    codes = (scaled[..., None] - FP4).abs().argmin(-1).to(torch.uint8)
    blocks = codes[..., 0::2] | (codes[..., 1::2] << 4)
    return blocks.contiguous(), (exp + 127).to(torch.uint8).contiguous()


def quantize_checkpoint(job) -> None:
    """A gpt-oss checkpoint (one safetensors file, BF16/F32 experts) rewritten as its MXFP4 release
    would be: experts as blocks and scales, everything else as stored, quantization_config mxfp4."""
    from safetensors.torch import load_file

    src, out = job["model"], job["out"]
    os.makedirs(out, exist_ok=True)
    tensors = load_file(os.path.join(src, "model.safetensors"))
    written = {}
    for name, t in tensors.items():
        if name.endswith(".mlp.experts.gate_up_proj") or name.endswith(".mlp.experts.down_proj"):
            # stored [E, in, out]; MXFP4 packs each output row's inputs: [E, out, in]
            blocks, scales = quantize(t.transpose(1, 2))
            written[name + "_blocks"] = blocks
            written[name + "_scales"] = scales
        else:
            written[name] = t.contiguous()
    save_file(written, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    config["quantization_config"] = {
        "quant_method": "mxfp4",
        "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"],
    }
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    json.dump({"transformers": transformers.__version__, "torch": torch.__version__, "tensors": sorted(written)}, sys.stdout)


def main() -> None:
    job = json.load(sys.stdin)
    if job.get("op") == "quantize":
        quantize_checkpoint(job)
        return
    out = job["out"]
    gen = torch.Generator().manual_seed(int(job.get("seed", 0)))
    E, H, I, L = int(job["experts"]), int(job["hidden"]), int(job["intermediate"]), int(job.get("layers", 2))
    assert H % 32 == 0 and I % 32 == 0, "hidden and intermediate must be multiples of 32"

    ckpt = os.path.join(out, "mxfp4")
    os.makedirs(ckpt, exist_ok=True)
    shards = [{}, {}]
    expected = {}

    def packed(rows: int, cols: int):
        blocks = torch.randint(0, 256, (E, rows, cols // 32, 16), dtype=torch.uint8, generator=gen)
        scales = torch.randint(110, 136, (E, rows, cols // 32), dtype=torch.uint8, generator=gen)
        flat = scales.view(-1)
        # a few groups at the edges of the exponent range
        picks = torch.randperm(flat.numel(), generator=gen)[:8]
        flat[picks] = torch.tensor([0, 0, 1, 1, 254, 254, 255, 255], dtype=torch.uint8)
        return blocks, scales

    for l in range(L):
        p = f"model.layers.{l}.mlp.experts"
        shard = shards[l % 2]
        gu_blocks, gu_scales = packed(2 * I, H)
        dn_blocks, dn_scales = packed(H, I)
        shard[f"{p}.gate_up_proj_blocks"] = gu_blocks
        # the last layer's scales in the other shard than its blocks
        (shards[(l + 1) % 2] if l == L - 1 else shard)[f"{p}.gate_up_proj_scales"] = gu_scales
        shard[f"{p}.down_proj_blocks"] = dn_blocks
        shard[f"{p}.down_proj_scales"] = dn_scales
        expected[f"{p}.gate_up_proj"] = convert_moe_packed_tensors(gu_blocks.clone(), gu_scales.clone()).contiguous()
        expected[f"{p}.down_proj"] = convert_moe_packed_tensors(dn_blocks.clone(), dn_scales.clone()).contiguous()
        assert expected[f"{p}.gate_up_proj"].shape == (E, H, 2 * I) and expected[f"{p}.gate_up_proj"].dtype == torch.bfloat16
        assert expected[f"{p}.down_proj"].shape == (E, I, H)
        for name, t in (
            (f"{p}.gate_up_proj_bias", torch.randn(E, 2 * I, generator=gen).to(torch.bfloat16)),
            (f"{p}.down_proj_bias", torch.randn(E, H, generator=gen).to(torch.bfloat16)),
            (f"model.layers.{l}.mlp.router.weight", torch.randn(E, H, generator=gen).to(torch.bfloat16)),
        ):
            shard[name] = t
            expected[name] = t

    files = [f"model-0000{i + 1}-of-00002.safetensors" for i in range(2)]
    weight_map = {}
    for shard, file in zip(shards, files):
        save_file(shard, os.path.join(ckpt, file), metadata={"format": "pt"})
        weight_map.update({name: file for name in shard})
    with open(os.path.join(ckpt, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {}, "weight_map": weight_map}, f)
    with open(os.path.join(ckpt, "config.json"), "w") as f:
        json.dump(
            {
                "model_type": "gpt_oss",
                "num_local_experts": E,
                "hidden_size": H,
                "intermediate_size": I,
                "num_hidden_layers": L,
                "quantization_config": {
                    "quant_method": "mxfp4",
                    "modules_to_not_convert": ["model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"],
                },
            },
            f,
        )
    save_file(expected, os.path.join(out, "expected.safetensors"), metadata={"format": "pt"})
    json.dump({"transformers": transformers.__version__, "torch": torch.__version__, "tensors": sorted(expected)}, sys.stdout)


if __name__ == "__main__":
    main()
