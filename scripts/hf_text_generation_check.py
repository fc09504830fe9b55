"""Hugging Face's `InferenceClient.text_generation` against a running `rfid-moe serve`
(test/serve/hf-text-generation.test.ts), and transformers' log-probabilities for the same tokens.

`InferenceClient(model=URL)` speaks Text Generation Inference's own API to the URL: POST
{inputs, parameters, stream} there, with its own parsing of the answer and the stream, and its own
exceptions from TGI's error_type. LangChain's HuggingFaceEndpoint goes through it. This script makes
the calls a user makes and reports, as JSON on stdout, what the client handed back. It then runs the
model in transformers over the prompt and the generated tokens it was given and reports every
position's log-softmax for those tokens: the reference the test compares the server's against. It
judges nothing.

Job (JSON on stdin): url (the model's TGI URL), server_url (the server's root, several models
served), model_dir (for transformers), prompt, stop (a string the greedy text reaches), regex,
chat_url (a model with a chat template) and conversation.
"""

import json
import sys

from client_attempt import attempt
from huggingface_hub import InferenceClient


def get(obj, key):
    """A field of what the client parsed: its dataclasses leave some nested values as dicts."""
    return obj[key] if isinstance(obj, dict) else getattr(obj, key)


def tokens(ts):
    return [{k: get(t, k) for k in ("id", "text", "logprob", "special")} for t in ts]


def details_of(d):
    return {
        "finish_reason": get(d, "finish_reason"),
        "generated_tokens": get(d, "generated_tokens"),
        "seed": get(d, "seed"),
        "prefill": [{k: get(t, k) for k in ("id", "text", "logprob")} for t in get(d, "prefill")],
        "tokens": tokens(get(d, "tokens")),
        "top_tokens": [tokens(ts) for ts in (get(d, "top_tokens") or [])],
    }


LANGCHAIN_DEFAULTS = {
    "max_new_tokens": 64,  # (LangChain's default is 512; shorter here, the rest as it sends them)
    "top_k": None,
    "top_p": 0.95,
    "typical_p": 0.95,
    "temperature": 0.8,
    "repetition_penalty": None,
    "return_full_text": False,
    "truncate": None,
    "stop": [],
    "seed": None,
    "do_sample": False,
    "watermark": False,
}


def main() -> None:
    job = json.load(sys.stdin)
    client = InferenceClient(model=job["url"])
    prompt = job["prompt"]

    def detailed(**kw):
        r = client.text_generation(prompt, details=True, **kw)
        return {"generated_text": r.generated_text, "details": details_of(r.details)}

    def streamed(details):
        events = []
        for e in client.text_generation(prompt, max_new_tokens=12, stream=True, details=details):
            if details:
                d = e.details
                events.append({"index": e.index, "token": tokens([e.token])[0], "generated_text": e.generated_text, "details": None if d is None else {k: get(d, k) for k in ("finish_reason", "generated_tokens", "seed", "input_length")}})
            else:
                events.append(e)
        return events

    report = {
        # the client's plainest call: TGI's POST / answers with the prompt before the text
        "plain": attempt(lambda: client.text_generation(prompt, max_new_tokens=20)),
        "no_full_text": attempt(lambda: client.text_generation(prompt, max_new_tokens=20, return_full_text=False)),
        "details": attempt(lambda: detailed(max_new_tokens=20, decoder_input_details=True, top_n_tokens=3)),
        "stream_text": attempt(lambda: streamed(False)),
        "stream_details": attempt(lambda: streamed(True)),
        "stop": attempt(lambda: detailed(max_new_tokens=40, stop=[job["stop"]])),
        "regex": attempt(lambda: detailed(max_new_tokens=30, grammar={"type": "regex", "value": job["regex"]})),
        "seeded": [attempt(lambda: detailed(max_new_tokens=16, do_sample=True, temperature=0.8, seed=1234)) for _ in range(2)],
        # LangChain's HuggingFaceEndpoint calls text_generation with its _default_params (langchain_huggingface
        # 1.x: top_p 0.95, typical_p 0.95, temperature 0.8, do_sample False, watermark False, …), streamed or not
        "langchain": attempt(lambda: client.text_generation(prompt, **LANGCHAIN_DEFAULTS)),
        "langchain_stream": attempt(lambda: list(client.text_generation(prompt, **LANGCHAIN_DEFAULTS, stream=True))),
        "zero_temperature": attempt(lambda: client.text_generation(prompt, max_new_tokens=4, temperature=0.0)),
        "top_p_one": attempt(lambda: client.text_generation(prompt, max_new_tokens=4, top_p=1.0)),
        "too_long": attempt(lambda: client.text_generation(prompt, max_new_tokens=100000)),
        "stream_prefill": attempt(lambda: list(client.text_generation(prompt, max_new_tokens=4, stream=True, details=True, decoder_input_details=True))),
        "unknown_model": attempt(lambda: InferenceClient(model=job["server_url"] + "/tgi/no-such-model").text_generation(prompt, max_new_tokens=4)),
        # several models served and the URL names none
        "which_model": attempt(lambda: InferenceClient(model=job["server_url"]).text_generation(prompt, max_new_tokens=4)),
        # the same kind of URL for a model with a chat template: chat_completion posts to URL/v1/chat/completions
        "chat": attempt(lambda: InferenceClient(model=job["chat_url"]).chat_completion(job["conversation"], max_tokens=8, temperature=0).choices[0].message.content),
    }

    # transformers' log-probabilities of the prompt's tokens and the generated ones, as the server gave their ids
    if "ok" in report["details"]:
        import torch
        from transformers import AutoModelForCausalLM

        d = report["details"]["ok"]["details"]
        ids = [t["id"] for t in d["prefill"]] + [t["id"] for t in d["tokens"]]
        model = AutoModelForCausalLM.from_pretrained(job["model_dir"], dtype=torch.float32)
        model.eval()
        with torch.no_grad():
            logits = model(torch.tensor([ids])).logits[0].double()
        logp = torch.log_softmax(logits, dim=-1)
        report["reference_logprobs"] = [float(logp[i - 1, ids[i]]) for i in range(1, len(ids))]
        tops = [torch.topk(logp[i - 1], 4) for i in range(len(d["prefill"]), len(ids))]
        report["reference_top"] = [[{"id": int(i), "logprob": float(v)} for v, i in zip(t.values, t.indices)] for t in tops]
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
