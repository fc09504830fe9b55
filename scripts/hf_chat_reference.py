#!/usr/bin/env python3
"""
The independent truth for /v1/chat/completions: Hugging Face transformers renders each
conversation with the tokenizer's own chat template (`apply_chat_template(...,
add_generation_prompt=True)`, as text and as token ids) and decodes greedily from those ids with
the model itself (`generate(do_sample=False)`), so the test can check both the prompt the server
builds and what it answers.

stdin:  {"model": DIR, "newTokens": N, "conversations": [CONVERSATION, ...]}, where a conversation
        is [{"role", "content"}, ...] or {"messages": [...], "kwargs": {...}, "options": {...},
        "tokenizer": DIR (another directory's tokenizer and chat template; default the model's)}, the
        kwargs passed to the template (e.g. {"enable_thinking": false}) and the options to
        apply_chat_template itself (add_generation_prompt, default true; continue_final_message;
        tools, the functions the template lists)
stdout: {"transformers": version, "results": [{"text", "ids", "generated"}, ...]}
"""
import json
import sys

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer


def main() -> None:
    job = json.load(sys.stdin)
    tokenizers = {}
    model = AutoModelForCausalLM.from_pretrained(job["model"], dtype=torch.float32).eval()
    results = []
    for conversation in job["conversations"]:
        # a conversation may be rendered with another directory's tokenizer (its chat template), the model the same
        where = conversation.get("tokenizer") if isinstance(conversation, dict) else None
        where = where or job["model"]
        if where not in tokenizers:
            tokenizers[where] = AutoTokenizer.from_pretrained(where)
        tok = tokenizers[where]
        messages = conversation["messages"] if isinstance(conversation, dict) else conversation
        kwargs = conversation.get("kwargs", {}) if isinstance(conversation, dict) else {}
        options = {"add_generation_prompt": True, **(conversation.get("options", {}) if isinstance(conversation, dict) else {})}
        if isinstance(conversation, dict) and conversation.get("tools") is not None:
            options["tools"] = conversation["tools"]
        text = tok.apply_chat_template(messages, tokenize=False, **options, **kwargs)
        ids = tok(text, add_special_tokens=False)["input_ids"]
        templated = tok.apply_chat_template(messages, tokenize=True, return_dict=True, **options, **kwargs)["input_ids"]
        if list(templated) != list(ids):
            raise SystemExit("apply_chat_template(tokenize=True) disagrees with tokenising its own text")
        with torch.no_grad():
            out = model.generate(
                torch.tensor([ids]),
                attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                max_new_tokens=job["newTokens"],
                do_sample=False,
            )
        results.append({"text": text, "ids": list(ids), "generated": out[0, len(ids):].tolist()})
    json.dump({"transformers": transformers.__version__, "results": results}, sys.stdout)


if __name__ == "__main__":
    main()
