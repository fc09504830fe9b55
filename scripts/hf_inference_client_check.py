"""Hugging Face's `InferenceClient` (huggingface_hub) against a running `rfid-moe serve`
(test/serve/hf-inference-client.test.ts).

`InferenceClient(base_url=...)` is how Hugging Face's own Python code reaches a self-hosted
OpenAI-compatible server (TGI, vLLM, this one). It is not the openai client: it builds its own
request bodies (a `json_schema` response format is sent as Text Generation Inference's
`{"type": "json_object", "value": schema}`), parses responses into its own dataclasses and reads
streams with its own decoder. This script makes the calls a user makes and reports, as JSON on
stdout, what the client handed back; it judges nothing.

Job (JSON on stdin): base_url (the server's /v1 URL), model (one with a chat template),
conversation, schema (a JSON schema), regex, tool (an OpenAI function tool).
"""

import json
import sys

from client_attempt import attempt
from huggingface_hub import InferenceClient


def main() -> None:
    job = json.load(sys.stdin)
    client = InferenceClient(base_url=job["base_url"], api_key="unused")
    model, messages = job["model"], job["conversation"]

    def chat(**kw):
        r = client.chat_completion(messages, model=model, temperature=0, **kw)
        c = r.choices[0]
        calls = [{"name": t.function.name, "arguments": t.function.arguments} for t in (c.message.tool_calls or [])]
        return {"content": c.message.content, "finish_reason": c.finish_reason, "tool_calls": calls, "usage": {"prompt_tokens": r.usage.prompt_tokens, "completion_tokens": r.usage.completion_tokens}}

    def streamed():
        pieces = []
        finish = None
        for chunk in client.chat_completion(messages, model=model, temperature=0, max_tokens=16, stream=True):
            if chunk.choices:
                pieces.append(chunk.choices[0].delta.content or "")
                finish = chunk.choices[0].finish_reason or finish
        return {"content": "".join(pieces), "finish_reason": finish}

    schema = job["schema"]
    report = {
        "plain": attempt(lambda: chat(max_tokens=16)),
        "streamed": attempt(streamed),
        # OpenAI's form, which the client sends as TGI's {"type": "json_object", "value": schema}
        "json_schema": attempt(lambda: chat(max_tokens=400, response_format={"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}})),
        # TGI's grammars, as the client's own documentation gives them
        "tgi_json": attempt(lambda: chat(max_tokens=400, response_format={"type": "json", "value": schema})),
        "tgi_regex": attempt(lambda: chat(max_tokens=24, response_format={"type": "regex", "value": job["regex"]})),
        "tool_call": attempt(lambda: chat(max_tokens=400, tools=[job["tool"]], tool_choice={"type": "function", "function": {"name": job["tool"]["function"]["name"]}})),
        "unknown_model": attempt(lambda: client.chat_completion(messages, model="no-such-model", max_tokens=4).choices[0].message.content),
        "bad_schema": attempt(lambda: chat(max_tokens=4, response_format={"type": "json", "value": {"type": "string", "pattern": "(?=a)b"}})),
    }
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
