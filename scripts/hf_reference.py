#!/usr/bin/env python3
"""
Runs checkpoints through Hugging Face transformers itself (AutoConfig + AutoModelForCausalLM, or
the config's own causal-LM class where that maps none: causal_lm_class), the client real users load
rfid-moe outputs with. The tests and the golden generator use it as an
independent truth beside scripts/torch_reference.py (plain torch, no transformers).

One process runs a whole list of jobs (importing torch + transformers costs seconds), read as JSON
from stdin:

  {"jobs": [
    {"op": "logits", "model": DIR, "ids": [[...]], "mask": [[...]], "matmulActivations": "f32" | "bf16"},
        -> {"ok": true, "logits": [[...] per valid position, batch-major], "loading": {...}}
           With "matmulActivations": "bf16" (default "f32"), the input of every linear layer but
           the MoE routers is rounded to BF16 first (Bf16MatmulActivations below): rfid-moe's
           BF16 matmul activations, for a checkpoint stored in BF16
    {"op": "ppl", "model": DIR, "ids": FILE.i32, "seqLen": L, "maxWindows": N},
        -> {"ok": true, "windows", "tokens", "meanNll", "perplexity", "loading": {...}}
    {"op": "load", "model": DIR}
        -> {"ok": true, "modelClass": ..., "loading": {...}} or {"ok": false, "error": ..., "type": ...}
    {"op": "generate", "model": DIR, "ids": [...], "maxNewTokens": N,
     "repetitionPenalty": R, "logitBias": [[id, bias], ...], "frequencyPenalty": F, "presencePenalty": P,
     "allowedTokenIds": [...]}
        -> {"ok": true, "generated": [...], "eosTokenId": ...}: greedy generate() with the model's
           own generation config (generation_config.json when present), so it stops where
           transformers stops. The optional fields: repetition_penalty and sequence_bias (one
           token per entry) are transformers' own logits processors; the OpenAI frequency and
           presence penalties, which transformers lacks, are OpenAIPenalties below, a logits
           processor transformers runs after its own, as vLLM applies them after the others;
           allowed token ids go through generate()'s prefix_allowed_tokens_fn
    {"op": "quantize_fp8", "model": DIR, "out": DIR, "block": [R, C], "partialBlocks": bool, "dequantizedOut": DIR,
     "scheme": "fp8" | "compressed-tensors-channel"}
        -> {"ok": true, "quantized": [names]}: the checkpoint as the block-FP8 releases (DeepSeek-V3,
           Qwen3-FP8) store it (Fp8Quantize below), written by torch; with "scheme":
           "compressed-tensors-channel", as llm-compressor's FP8 checkpoints store it instead (one
           scale per output channel, NAME_scale of shape [rows, 1], its config_groups); with
           "dequantizedOut", also the same weights dequantised by torch (each block's codes times
           its scale, in f32, rounded to BF16) as a plain BF16 checkpoint
    {"op": "warp", "logits": [[...]], "temperature": T, "topK": K, "topP": P, "minP": M, "typicalP": Y}
        -> {"ok": true, "probs": [[...]]}: softmax of the rows after transformers' own sampling
           warpers as generate() builds them for do_sample=True (temperature, top-k, top-p,
           min-p, typical, in its order), float32; typicalP may be absent (off)
    {"op": "wrap", "model": DIR, "out": DIR, "wrapper": "mistral3" | "llama4", "prefix": "release" | "module", "tie": bool | null, "seed": N}
    {"op": "wrap", "textConfig": {...}, "out": DIR, "wrapper": "qwen3_vl_moe" | "glm4v_moe", "tie": bool | null, "expertsTransposed": bool, "seed": N}
    {"op": "meta_checkpoint", "modelType": TYPE, "config": {...}, "multimodal": bool, "out": DIR, "shardBytes": N}
        -> {"ok": true, "tensors": [names]}: the model as the language model of a multimodal
           checkpoint built and saved by transformers (wrap_job below)
  ]}

and answers {"transformers": version, "torch": version, "results": [...]} on stdout, one result per
job in order. A job that fails to load answers {"ok": false, "type", "error"} (the exception's
class and message) instead of stopping the others. `loading` lists the checkpoint's tensors that
transformers did not use (unexpected), could not find (missing, hence randomly initialised) or
found with another shape (mismatched): a faithful load has all three empty.

A logits job may name "loadDtype": "bfloat16": the model is then loaded in BF16 (a block-FP8
checkpoint is dequantised by transformers to BF16, as it does on a CPU) and converted to float32
before it runs.

Weights are loaded as float32 (the rfid-moe runtime computes in f32 whatever the storage dtype),
in eval mode; the perplexity follows `rfid-moe eval`: consecutive non-overlapping windows of L
tokens from the start, the remainder dropped, mean NLL over the L - 1 predicted tokens of each.
"""
import json
import math
import sys

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from transformers import AutoConfig, AutoModelForCausalLM


def causal_lm_class(model_dir):
    """
    AutoModelForCausalLM, or, where transformers maps the config to no class of its own (5.18 lists
    Mistral4ForCausalLM under pre-training and image-text-to-text only), the causal-LM class the
    config's `architectures` names, as that model's users load it; a multimodal model
    (Mistral3ForConditionalGeneration) likewise, whose forward on token ids alone gives its language
    model's logits. AutoConfig refuses a model type transformers does not know (a factored output,
    DeepSeek v1) as AutoModelForCausalLM would.
    """
    config = AutoConfig.from_pretrained(model_dir)
    architectures = [name for name in config.architectures or [] if hasattr(transformers, name)]
    # the whole multimodal model as saved (AutoModelForCausalLM gives Llama 4's text model alone, its vision tower unused)
    for name in architectures:
        if name.endswith("ForConditionalGeneration"):
            return getattr(transformers, name)
    if type(config) in AutoModelForCausalLM._model_mapping:
        return AutoModelForCausalLM
    for name in architectures:
        if name.endswith("ForCausalLM"):
            return getattr(transformers, name)
    return AutoModelForCausalLM


def load(model_dir, load_dtype="float32", **options):
    if load_dtype not in ("float32", "bfloat16"):
        raise ValueError("loadDtype must be float32 or bfloat16, got %r" % load_dtype)
    model, info = causal_lm_class(model_dir).from_pretrained(model_dir, dtype=getattr(torch, load_dtype), output_loading_info=True, **options)
    model = model.float()
    model.eval()
    loading = {k: sorted(str(x) for x in info.get(k, [])) for k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    return model, loading


class Bf16MatmulActivations:
    """
    While active, every F.linear call of `model` but a MoE router's rounds its input to BF16 (to
    nearest, ties to even) and multiplies in f32: what rfid-moe computes with matmulActivations
    'bf16' for a checkpoint stored in BF16, where it keeps every matrix BF16 but the routers.
    transformers 5 runs nn.Linear, its routers and its eager experts (one F.linear per expert
    and projection) through torch.nn.functional.linear, looked up at each call, so patching that
    one function reaches them all (the model must be loaded with experts_implementation="eager":
    the default, grouped_mm, multiplies the experts elsewhere). Routers: the modules whose class
    name ends in "Router". Llama 4's experts do not go through the experts interface: they multiply
    every expert at once with torch.bmm, patched the same way for the parameters of modules whose
    class name ends in "Experts".
    """

    def __init__(self, model):
        self.routers = {m.weight.data_ptr() for m in model.modules() if type(m).__name__.endswith("Router")}
        if not self.routers:
            raise RuntimeError("no router module found: Bf16MatmulActivations does not know this model's layout")
        # experts that multiply all at once through torch.bmm (Llama 4's) instead of one F.linear each
        self.bmm_experts = {p.data_ptr() for m in model.modules() if type(m).__name__.endswith("Experts") for p in m.parameters(recurse=False)}
        self.calls = 0

    def __enter__(self):
        self.original, self.original_bmm = F.linear, torch.bmm
        routers, original, original_bmm, experts = self.routers, self.original, self.original_bmm, self.bmm_experts

        def linear(x, weight, bias=None):
            if weight.data_ptr() not in routers:
                self.calls += 1
                x = x.to(torch.bfloat16).to(x.dtype)
            return original(x, weight, bias)

        def bmm(x, weight, *args, **kwargs):
            if weight.data_ptr() in experts:
                self.calls += 1
                x = x.to(torch.bfloat16).to(x.dtype)
            return original_bmm(x, weight, *args, **kwargs)

        torch.nn.functional.linear = linear
        torch.bmm = bmm
        return self

    def __exit__(self, *exc):
        torch.nn.functional.linear = self.original
        torch.bmm = self.original_bmm
        return False


def logits_job(job):
    activations = job.get("matmulActivations", "f32")
    if activations not in ("f32", "bf16"):
        raise ValueError("matmulActivations must be f32 or bf16, got %r" % activations)
    model, loading = load(job["model"], job.get("loadDtype", "float32"), **({"experts_implementation": "eager"} if activations == "bf16" else {}))
    ids = torch.tensor(job["ids"], dtype=torch.int64)
    mask = torch.tensor(job["mask"], dtype=torch.int64)
    with torch.no_grad():
        if activations == "bf16":
            with Bf16MatmulActivations(model) as rounding:
                out = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
            if rounding.calls == 0:
                raise RuntimeError("no linear layer went through the rounding: the patch missed this model")
        else:
            out = model(input_ids=ids, attention_mask=mask, use_cache=False).logits.float()
    rows = [out[b, t].tolist() for b in range(ids.shape[0]) for t in range(ids.shape[1]) if int(mask[b, t]) == 1]
    return {"ok": True, "logits": rows, "loading": loading}


def ppl_job(job):
    model, loading = load(job["model"])
    ids = np.fromfile(job["ids"], dtype="<i4").astype(np.int64)
    seq_len = int(job["seqLen"])
    n = len(ids) // seq_len
    if job.get("maxWindows") is not None:
        n = min(n, int(job["maxWindows"]))
    total, count = 0.0, 0
    batch = 8
    with torch.no_grad():
        for s in range(0, n, batch):
            w = torch.from_numpy(ids[s * seq_len : min(n, s + batch) * seq_len]).view(-1, seq_len)
            logits = model(input_ids=w, attention_mask=torch.ones_like(w), use_cache=False).logits.float()[:, :-1]
            nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1), reduction="sum")
            total += float(nll.double())
            count += w.shape[0] * (seq_len - 1)
    return {"ok": True, "windows": n, "tokens": count, "meanNll": total / count, "perplexity": math.exp(total / count), "loading": loading}


def load_job(job):
    model, loading = load(job["model"])
    return {"ok": True, "modelClass": type(model).__name__, "loading": loading}


class OpenAIPenalties(transformers.LogitsProcessor):
    """OpenAI's penalties over the completion so far: logits -= frequency * count; logits -= presence * (count > 0)."""

    def __init__(self, prompt_length, frequency, presence):
        self.prompt_length = prompt_length
        self.frequency = frequency
        self.presence = presence

    def __call__(self, input_ids, scores):
        completion = input_ids[:, self.prompt_length :]
        counts = torch.zeros_like(scores)
        counts.scatter_add_(1, completion, torch.ones_like(completion, dtype=scores.dtype))
        scores = scores - self.frequency * counts
        return scores - self.presence * (counts > 0).to(scores.dtype)


def generate_job(job):
    model, loading = load(job["model"])
    ids = torch.tensor([job["ids"]], dtype=torch.int64)
    extra = {}
    if job.get("repetitionPenalty") is not None:
        extra["repetition_penalty"] = float(job["repetitionPenalty"])
    if job.get("logitBias"):
        extra["sequence_bias"] = {(int(t),): float(b) for t, b in job["logitBias"]}
    frequency, presence = float(job.get("frequencyPenalty") or 0), float(job.get("presencePenalty") or 0)
    if frequency != 0 or presence != 0:
        extra["logits_processor"] = transformers.LogitsProcessorList([OpenAIPenalties(ids.shape[1], frequency, presence)])
    if job.get("badWordsIds"):
        extra["bad_words_ids"] = [[int(t) for t in w] for w in job["badWordsIds"]]
    if job.get("allowedTokenIds"):
        allowed = [int(t) for t in job["allowedTokenIds"]]
        extra["prefix_allowed_tokens_fn"] = lambda batch_id, input_ids: allowed
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=int(job["maxNewTokens"]), do_sample=False, **extra)
    eos = model.generation_config.eos_token_id
    return {"ok": True, "generated": out[0, ids.shape[1]:].tolist(), "eosTokenId": eos, "loading": loading}


def warp_job(job):
    config = transformers.GenerationConfig(do_sample=True, temperature=float(job["temperature"]), top_k=int(job["topK"]), top_p=float(job["topP"]), min_p=job.get("minP"), typical_p=float(job.get("typicalP") or 1.0))
    # the processors generate() would run, built by its own method on a model-less GenerationMixin
    processors = transformers.GenerationMixin._get_logits_processor(
        transformers.GenerationMixin(), generation_config=config, input_ids_seq_length=1, encoder_input_ids=None, prefix_allowed_tokens_fn=None, logits_processor=transformers.LogitsProcessorList()
    )
    scores = torch.tensor(job["logits"], dtype=torch.float32)
    ids = torch.zeros((scores.shape[0], 1), dtype=torch.int64)
    probs = torch.softmax(processors(ids, scores), dim=-1)
    return {"ok": True, "probs": probs.tolist(), "processors": [type(p).__name__ for p in processors]}


class Fp8Quantize:
    """
    Block FP8 as DeepSeek-V3 and the Qwen3-FP8 releases store it: each [R, C] block of a linear
    layer's weight (of every matrix, for a fused [E, rows, cols] one) gets the scale
    max|w| / 448 (1 for an all-zero block), its codes are w / scale cast to float8_e4m3fn, and the
    scale is stored as F32 beside it under NAME_scale_inv. Embeddings, the lm_head, norms, biases
    and the routers stay in BF16, as in those releases (their modules_to_not_convert). A weight
    whose shape the block does not divide is quantized with partial edge blocks when
    partial_blocks is set (the grid is the ceiling, as DeepSeek's releases have it), and otherwise
    left in BF16 (transformers' dequantising load needs whole blocks).
    """

    KEEP = ("embed_tokens", "lm_head", "norm", "router", "bias")

    def __init__(self, block, partial_blocks):
        # block None: one block per output channel (a row of the weight), compressed-tensors' "channel"
        self.channel = block is None
        self.rows, self.cols = block if block is not None else (1, None)
        self.partial = partial_blocks

    def for_weight(self, w):
        """the quantizer of this weight's blocks (a channel's block is one whole row)"""
        return Fp8Quantize((1, w.shape[-1]), True) if self.channel else self

    def wanted(self, name, w):
        if w.dim() < 2 or not w.is_floating_point() or any(k in name for k in self.KEEP):
            return False
        if name.endswith(".gate.weight") or name.endswith("shared_expert_gate.weight"):
            return False  # the routers (and Qwen2-MoE's shared-expert gate)
        return self.channel or self.partial or (w.shape[-2] % self.rows == 0 and w.shape[-1] % self.cols == 0)

    def grid(self, w):
        return math.ceil(w.shape[-2] / self.rows), math.ceil(w.shape[-1] / self.cols)

    def blocks(self, w):
        """w padded with zeros to whole blocks, as [matrices, grid rows, R, grid cols, C]"""
        gr, gc = self.grid(w)
        m = w.float().reshape(-1, w.shape[-2], w.shape[-1])
        padded = torch.zeros(m.shape[0], gr * self.rows, gc * self.cols)
        padded[:, : w.shape[-2], : w.shape[-1]] = m
        return padded.reshape(m.shape[0], gr, self.rows, gc, self.cols)

    def quantize(self, w):
        b = self.blocks(w)
        amax = b.abs().amax(dim=(2, 4), keepdim=True)
        scale = torch.where(amax > 0, amax / 448.0, torch.ones_like(amax))
        codes = (b / scale).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)
        gr, gc = self.grid(w)
        codes = codes.reshape(-1, gr * self.rows, gc * self.cols)[:, : w.shape[-2], : w.shape[-1]].reshape(w.shape).contiguous()
        return codes, scale.reshape(*w.shape[:-2], gr, gc).contiguous()

    def dequantize(self, codes, scale):
        """codes times their block's scale in f32, rounded to BF16 (DeepSeek's weight_dequant)"""
        gr, gc = self.grid(codes)
        b = self.blocks(codes.float())
        s = scale.float().reshape(-1, gr, 1, gc, 1)
        w = (b * s).reshape(-1, gr * self.rows, gc * self.cols)[:, : codes.shape[-2], : codes.shape[-1]]
        return w.reshape(codes.shape).to(torch.bfloat16).contiguous()


def quantize_fp8_job(job):
    import glob
    import os
    import shutil

    from safetensors.torch import load_file, save_file

    src, out = job["model"], job["out"]
    scheme = job.get("scheme", "fp8")
    if scheme not in ("fp8", "compressed-tensors-channel"):
        raise ValueError("scheme must be fp8 or compressed-tensors-channel, got %r" % scheme)
    channel = scheme == "compressed-tensors-channel"
    q = Fp8Quantize(None if channel else job["block"], bool(job.get("partialBlocks", False)))
    suffix = "_scale" if channel else "_scale_inv"
    tensors = {}
    for f in sorted(glob.glob(os.path.join(src, "*.safetensors"))):
        tensors.update(load_file(f))
    stored, dequantized, quantized = {}, {}, []
    for name, w in tensors.items():
        w = w.to(torch.bfloat16) if w.is_floating_point() else w
        if q.wanted(name, w):
            wq = q.for_weight(w)
            codes, scale = wq.quantize(w)
            stored[name], stored[name + suffix] = codes, scale
            dequantized[name] = wq.dequantize(codes, scale)
            quantized.append(name)
        else:
            stored[name] = dequantized[name] = w
    with open(os.path.join(src, "config.json")) as f:
        config = json.load(f)
    if channel:
        quantization = {
            "quant_method": "compressed-tensors",
            "format": "float-quantized",
            "config_groups": {
                "group_0": {
                    "targets": ["Linear"],
                    "weights": {"num_bits": 8, "type": "float", "strategy": "channel", "symmetric": True, "dynamic": False},
                    "input_activations": {"num_bits": 8, "type": "float", "strategy": "token", "symmetric": True, "dynamic": True},
                }
            },
            "ignore": ["lm_head"],
        }
    else:
        quantization = {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": list(job["block"])}
    targets = [(out, stored, dict(config, quantization_config=quantization))]
    if job.get("dequantizedOut"):
        targets.append((job["dequantizedOut"], dequantized, config))
    for directory, weights, cfg in targets:
        os.makedirs(directory, exist_ok=True)
        save_file(weights, os.path.join(directory, "model.safetensors"), metadata={"format": "pt"})
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
        for extra in ("generation_config.json", "tokenizer.json", "tokenizer_config.json"):
            if os.path.exists(os.path.join(src, extra)):
                shutil.copy(os.path.join(src, extra), os.path.join(directory, extra))
    return {"ok": True, "quantized": quantized}


def wrap_job(job):
    """
    A multimodal checkpoint around the language model in job["model"], built by transformers with a
    tiny, seeded vision tower and projector, its language model holding the model's weights, saved
    by save_pretrained into job["out"]: a Mistral3ForConditionalGeneration (Pixtral; saved under the
    releases' names, language_model.model.…) or a Llama4ForConditionalGeneration (whose own module
    names are language_model.model.…); or a Qwen3VLMoeForConditionalGeneration or
    Glm4vMoeForConditionalGeneration whose language model
    is built from job["textConfig"] with seeded random weights (it has no causal-LM class to load
    one from), its experts rewritten in the releases' transposed form where job["expertsTransposed"]. With job["prefix"] == "module" a Mistral 3's tensors are
    renamed as transformers names its modules (model.language_model.…, lm_head, model.vision_tower.…);
    job["tie"] sets the wrapper's tie_word_embeddings, and None removes the key from config.json
    (the wrapper class's default then applies).
    """
    import os

    from safetensors.torch import load_file, save_file
    from transformers import Llama4Config, Llama4ForConditionalGeneration, Llama4VisionConfig, Mistral3Config, Mistral3ForConditionalGeneration, PixtralVisionConfig

    tie = job.get("tie")
    tie_args = {} if tie is None else {"tie_word_embeddings": tie}
    torch.manual_seed(job.get("seed", 0))
    if job.get("wrapper") in ("qwen3_vl_moe", "glm4v_moe"):
        # no causal-LM class of its own: the language model is built from job["textConfig"] and drawn at random (seeded)
        from transformers import Glm4vMoeConfig, Glm4vMoeForConditionalGeneration, Qwen3VLMoeConfig, Qwen3VLMoeForConditionalGeneration

        hidden = job["textConfig"]["hidden_size"]
        vision = dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, out_hidden_size=hidden, patch_size=4, spatial_merge_size=2, temporal_patch_size=2)
        if job["wrapper"] == "qwen3_vl_moe":
            config = Qwen3VLMoeConfig(text_config=job["textConfig"], vision_config={**vision, "num_position_embeddings": 16, "deepstack_visual_indexes": [0]}, **tie_args)
            wrapped = Qwen3VLMoeForConditionalGeneration(config)
        else:
            config = Glm4vMoeConfig(text_config=job["textConfig"], vision_config={**vision, "image_size": 16}, **tie_args)
            wrapped = Glm4vMoeForConditionalGeneration(config)
        with torch.no_grad():
            for name, param in wrapped.model.language_model.named_parameters():
                if name.endswith("norm.weight"):
                    param.copy_(1 + 0.1 * torch.randn_like(param))
                else:
                    param.copy_(torch.randn_like(param) / math.sqrt(param.shape[-1]))
            if not config.tie_word_embeddings:
                wrapped.lm_head.weight.copy_(torch.randn_like(wrapped.lm_head.weight) / math.sqrt(hidden))
    elif job.get("wrapper") == "mistral3":
        text = causal_lm_class(job["model"]).from_pretrained(job["model"], dtype=torch.float32)
        vision = PixtralVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8)
        config = Mistral3Config(text_config=text.config.to_dict(), vision_config=vision, image_token_index=job.get("imageTokenIndex", 10), **tie_args)
        wrapped = Mistral3ForConditionalGeneration(config)
        wrapped.model.language_model.load_state_dict(text.model.state_dict())
        if not config.tie_word_embeddings:
            wrapped.lm_head.load_state_dict(text.lm_head.state_dict())
    elif job.get("wrapper") == "llama4":
        text = causal_lm_class(job["model"]).from_pretrained(job["model"], dtype=torch.float32)
        hidden = text.config.hidden_size
        vision = Llama4VisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, image_size=32, patch_size=8, vision_output_dim=16, projector_input_dim=16, projector_output_dim=hidden)
        config = Llama4Config(text_config=text.config.to_dict(), vision_config=vision, image_token_index=job.get("imageTokenIndex", 10), **tie_args)
        wrapped = Llama4ForConditionalGeneration(config)
        wrapped.language_model.model.load_state_dict(text.model.state_dict())
        if not config.tie_word_embeddings:
            wrapped.language_model.lm_head.load_state_dict(text.lm_head.state_dict())
    else:
        raise ValueError("wrapper must be 'mistral3', 'llama4', 'qwen3_vl_moe' or 'glm4v_moe', got %r" % job.get("wrapper"))
    out = job["out"]
    wrapped.save_pretrained(out)
    config_file = os.path.join(out, "config.json")
    if tie is None:
        with open(config_file) as f:
            saved = json.load(f)
        del saved["tie_word_embeddings"]
        with open(config_file, "w") as f:
            json.dump(saved, f, indent=2)
    if job.get("expertsTransposed"):
        # the experts as Qwen3-VL-MoE's releases store them, [E, H, 2I] and [E, I, H] (transformers saves its modules' [E, 2I, H] and [E, H, I])
        for name in os.listdir(out):
            if name.endswith(".safetensors"):
                tensors = load_file(os.path.join(out, name))
                for key in list(tensors):
                    if key.endswith(("mlp.experts.gate_up_proj", "mlp.experts.down_proj")):
                        tensors[key] = tensors[key].transpose(1, 2).contiguous()
                save_file(tensors, os.path.join(out, name), metadata={"format": "pt"})
    if job.get("prefix") == "module":
        module_names = [("language_model.model.", "model.language_model."), ("language_model.lm_head.", "lm_head."), ("vision_tower.", "model.vision_tower."), ("multi_modal_projector.", "model.multi_modal_projector.")]
        for name in os.listdir(out):
            if name.endswith(".safetensors"):
                tensors = load_file(os.path.join(out, name))
                renamed = {}
                for key, value in tensors.items():
                    for old, new in module_names:
                        if key.startswith(old):
                            key = new + key[len(old):]
                            break
                    renamed[key] = value
                save_file(renamed, os.path.join(out, name), metadata={"format": "pt"})
    names = []
    for name in os.listdir(out):
        if name.endswith(".safetensors"):
            names += list(load_file(os.path.join(out, name)).keys())
    return {"ok": True, "tensors": sorted(names)}


def meta_checkpoint_job(job):
    """
    A checkpoint at the size of transformers' own configuration of job["modelType"] (its config
    class's defaults, which transformers takes from the family's reference release, with
    job["config"] on top), written without its weights: the model is built on the meta device,
    config.json is saved as save_pretrained saves it, and the state dict's names and shapes (tied
    weights once) go into BF16 safetensors shards of at most job["shardBytes"] whose data is a hole
    (sparse files: a 671B-parameter model takes a few kilobytes of disk). Readers that look only at
    headers, shapes and config (open, validate, count, inspect, plan) see the real model's layout.
    Answers the number of parameters transformers' model has, and of tensors written.
    """
    import os

    from transformers import AutoModelForImageTextToText

    cfg = AutoConfig.for_model(job["modelType"], **job.get("config", {}))
    # a multimodal model (Qwen3-VL-MoE, Llama 4, Mistral 3) whole, as released
    auto = AutoModelForCausalLM if type(cfg) in AutoModelForCausalLM._model_mapping and not job.get("multimodal") else AutoModelForImageTextToText
    with torch.device("meta"):
        model = auto.from_config(cfg)
    out = job["out"]
    os.makedirs(out, exist_ok=True)
    model.config.architectures = [type(model).__name__]
    model.config.save_pretrained(out)
    # the names and forms save_pretrained writes: tied weights once, keys it ignores left out, and
    # transformers' conversions of its module names and fused forms reverted to the releases' own
    from transformers.core_model_loading import revert_weight_conversion

    state = model.state_dict()
    for name in model._keys_to_ignore_on_save or []:
        state.pop(name, None)
    if getattr(model.config, "tie_word_embeddings", False):
        for name in getattr(model, "_tied_weights_keys", None) or {}:
            state.pop(name, None)
    state = revert_weight_conversion(model, state)
    shard_bytes = int(job.get("shardBytes", 5 * 2**30))
    shards, current, size = [], [], 0
    for name, tensor in state.items():
        nbytes = tensor.numel() * 2
        if current and size + nbytes > shard_bytes:
            shards.append(current)
            current, size = [], 0
        current.append((name, list(tensor.shape), nbytes))
        size += nbytes
    if current:
        shards.append(current)
    weight_map = {}
    for i, shard in enumerate(shards):
        file = "model-%05d-of-%05d.safetensors" % (i + 1, len(shards))
        header, offset = {"__metadata__": {"format": "pt"}}, 0
        for name, shape, nbytes in shard:
            header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + nbytes]}
            offset += nbytes
            weight_map[name] = file
        encoded = json.dumps(header, separators=(",", ":")).encode()
        encoded += b" " * (-len(encoded) % 8)
        path = os.path.join(out, file)
        with open(path, "wb") as f:
            f.write(len(encoded).to_bytes(8, "little"))
            f.write(encoded)
            f.truncate(8 + len(encoded) + offset)
        if os.stat(path).st_blocks * 512 > len(encoded) + 2**20:
            os.remove(path)
            raise OSError("%s keeps no sparse files: a weightless %s checkpoint would fill the disk" % (out, job["modelType"]))
    total = sum(t.numel() for t in state.values())
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total * 2}, "weight_map": weight_map}, f, indent=2)
    outside = sum(t.numel() for name, t in state.items() if "language_model" not in name and not name.startswith("lm_head."))
    return {"ok": True, "modelClass": type(model).__name__, "parameters": total, "outsideLanguageModel": outside if auto is AutoModelForImageTextToText else 0, "tensors": len(state)}


OPS = {"logits": logits_job, "ppl": ppl_job, "load": load_job, "generate": generate_job, "warp": warp_job, "quantize_fp8": quantize_fp8_job, "wrap": wrap_job, "meta_checkpoint": meta_checkpoint_job}


def main():
    spec = json.load(sys.stdin)
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    torch.manual_seed(0)
    results = []
    for job in spec["jobs"]:
        op = OPS.get(job.get("op"))
        if op is None:
            results.append({"ok": False, "type": "UnknownOp", "error": "unknown op %r" % job.get("op")})
            continue
        try:
            results.append(op(job))
        except Exception as err:  # reported per job: a refusal is a result the tests check
            results.append({"ok": False, "type": type(err).__name__, "error": str(err)})
    json.dump({"transformers": transformers.__version__, "torch": torch.__version__, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
