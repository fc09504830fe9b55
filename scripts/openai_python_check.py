"""The official `openai` Python client against a running `rfid-moe serve` (test/serve/openai-python-client.test.ts).

Python code reaches an OpenAI-compatible server through this client: it parses
every response into its own types, reads streams with its own SSE decoder, maps error bodies to
typed exceptions and cancels a stream by closing its connection. This script makes the calls a
user makes and reports, as JSON on stdout, what the client handed back; it judges nothing (the
test compares the report with transformers' greedy tokens and with the server's raw responses).

Job (JSON on stdin):
  base_url       the server's /v1 URL
  model          a served model without a chat template
  chat_model     a served model with one (or null)
  prompts        completion prompts (greedy, max_tokens each)
  max_tokens     new tokens a completion
  conversation   chat messages for chat_model (also asked in JSON mode, 48 tokens)
  cancel_after   with `cancel` true, only this: read this many chunks of a long streamed
                 completion (max_tokens 1000), then close the stream, and report the chunks read
  cancel         see cancel_after
"""

import asyncio
import json
import sys

import openai


def error_of(exc: BaseException) -> dict:
    """What the client raised: its class, and the fields a caller reads off an APIStatusError."""
    out = {"class": type(exc).__name__, "message": str(getattr(exc, "message", exc))}
    for field in ("status_code", "code", "param", "type"):
        value = getattr(exc, field, None)
        if value is not None:
            out[field] = value
    return out


def attempt(fn):
    """{"ok": value} or {"error": what the client raised}."""
    try:
        return {"ok": fn()}
    except openai.OpenAIError as exc:
        return {"error": error_of(exc)}


def completion(client, job, prompt):
    r = client.completions.create(model=job["model"], prompt=prompt, max_tokens=job["max_tokens"], temperature=0, logprobs=2)
    choice = r.choices[0]
    lp = choice.logprobs
    return {
        "id": r.id,
        "object": r.object,
        "model": r.model,
        "text": choice.text,
        "finish_reason": choice.finish_reason,
        "usage": r.usage.model_dump(exclude_none=True) if r.usage else None,
        "logprobs": {
            "tokens": lp.tokens,
            "token_logprobs": lp.token_logprobs,
            "top_logprobs": lp.top_logprobs,
            "text_offset": lp.text_offset,
        }
        if lp
        else None,
    }


def streamed_completion(client, job, prompt):
    stream = client.completions.create(
        model=job["model"], prompt=prompt, max_tokens=job["max_tokens"], temperature=0, stream=True, stream_options={"include_usage": True}
    )
    pieces, finish, usage = [], None, None
    for chunk in stream:
        for c in chunk.choices:
            pieces.append(c.text)
            finish = c.finish_reason or finish
        if chunk.usage:
            usage = chunk.usage.model_dump(exclude_none=True)
    return {"pieces": pieces, "finish_reason": finish, "usage": usage}


def batch_completion(client, job):
    r = client.completions.create(model=job["model"], prompt=job["prompts"], max_tokens=job["max_tokens"], temperature=0)
    return [{"index": c.index, "text": c.text, "finish_reason": c.finish_reason} for c in r.choices]


def chat(client, job):
    r = client.chat.completions.create(
        model=job["chat_model"], messages=job["conversation"], max_tokens=job["max_tokens"], temperature=0, logprobs=True, top_logprobs=2
    )
    choice = r.choices[0]
    return {
        "object": r.object,
        "role": choice.message.role,
        "content": choice.message.content,
        "finish_reason": choice.finish_reason,
        "usage": r.usage.model_dump(exclude_none=True) if r.usage else None,
        "logprobs": [
            {"token": t.token, "logprob": t.logprob, "top": [[a.token, a.logprob] for a in t.top_logprobs]} for t in choice.logprobs.content
        ]
        if choice.logprobs and choice.logprobs.content
        else None,
    }


def streamed_chat(client, job):
    stream = client.chat.completions.create(
        model=job["chat_model"], messages=job["conversation"], max_tokens=job["max_tokens"], temperature=0, stream=True
    )
    pieces, roles, finish = [], [], None
    for chunk in stream:
        for c in chunk.choices:
            if c.delta.role:
                roles.append(c.delta.role)
            if c.delta.content:
                pieces.append(c.delta.content)
            finish = c.finish_reason or finish
    return {"pieces": pieces, "roles": roles, "finish_reason": finish}


def json_chat(client, job):
    """JSON mode: response_format={"type": "json_object"}."""
    r = client.chat.completions.create(
        model=job["chat_model"], messages=job["conversation"], max_tokens=48, temperature=0, response_format={"type": "json_object"}
    )
    return {"content": r.choices[0].message.content, "finish_reason": r.choices[0].finish_reason}


def guided_chat(client, job):
    """vLLM's structured outputs through extra_body, as vLLM's documentation shows them: a choice and a regex."""
    out = {}
    for name, extra in (("choice", {"structured_outputs": {"choice": job["choices"]}}), ("regex", {"guided_regex": job["regex"]})):
        r = client.chat.completions.create(
            model=job["chat_model"], messages=job["conversation"], max_tokens=24, temperature=0, extra_body=extra
        )
        out[name] = {"content": r.choices[0].message.content, "finish_reason": r.choices[0].finish_reason}
    return out


def responses(client, job):
    """The Responses API: a text input with instructions, whole and streamed (the client's stream helper accumulates the events)."""
    args = dict(model=job["chat_model"], instructions=job["conversation"][0]["content"], input=job["conversation"][1]["content"], max_output_tokens=24, temperature=0)
    whole = client.responses.create(**args)
    deltas = []
    with client.responses.stream(**args) as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = stream.get_final_response()
    return {"output_text": whole.output_text, "status": whole.status, "usage": whole.usage.model_dump(), "streamed": "".join(deltas), "final_text": final.output_text, "final_status": final.status}


def tool_chat(client, job):
    """A call of a named function: the parsed tool call, whole and streamed (the deltas' arguments joined)."""
    args = dict(model=job["chat_model"], messages=job["conversation"], temperature=0, tools=job["tools"], tool_choice={"type": "function", "function": {"name": job["tools"][0]["function"]["name"]}})
    r = client.chat.completions.create(**args)
    call = r.choices[0].message.tool_calls[0]
    streamed = {"name": None, "arguments": "", "ids": set()}
    finish = None
    for chunk in client.chat.completions.create(**args, stream=True):
        for c in chunk.choices:
            finish = c.finish_reason or finish
            for d in c.delta.tool_calls or []:
                streamed["ids"].add(d.id) if d.id else None
                if d.function and d.function.name:
                    streamed["name"] = d.function.name
                if d.function and d.function.arguments:
                    streamed["arguments"] += d.function.arguments
    return {
        "id": call.id,
        "name": call.function.name,
        "arguments": call.function.arguments,
        "content": r.choices[0].message.content,
        "finish_reason": r.choices[0].finish_reason,
        "streamed": {"name": streamed["name"], "arguments": streamed["arguments"], "ids": len(streamed["ids"]), "finish_reason": finish},
    }


def parsed_tool_chat(client, job):
    """A strict tool from a pydantic model (openai.pydantic_function_tool), called by name and
    parsed by the client's chat.completions.parse into that model."""
    from typing import Literal, Optional

    from pydantic import BaseModel

    class Letter(BaseModel):
        to: Literal["Romeo", "Juliet"]
        urgent: bool
        # (no free string: the test models write one until max_tokens)
        note: Optional[Literal["in haste", "by the friar"]]

    tool = openai.pydantic_function_tool(Letter)
    r = client.chat.completions.parse(
        model=job["chat_model"], messages=job["conversation"], temperature=0, tools=[tool], tool_choice={"type": "function", "function": {"name": "Letter"}}
    )
    call = r.choices[0].message.tool_calls[0]
    parsed = call.function.parsed_arguments
    return {"tool": tool, "arguments": call.function.arguments, "parsed_type": type(parsed).__name__, "parsed": parsed.model_dump(), "finish_reason": r.choices[0].finish_reason}


def parsed_output_chat(client, job):
    """A pydantic model as the response format (chat.completions.parse), with the field rules
    Pydantic writes (datetime, date, UUID, a pattern, lengths, numeric bounds, a discriminated
    union, a Decimal, a timedelta, network addresses), parsed and validated by pydantic into that
    model: greedy, then sampled."""
    import datetime
    import ipaddress
    import uuid
    from decimal import Decimal
    from typing import Annotated, Literal, Optional, Union

    from openai.lib._pydantic import to_strict_json_schema
    from pydantic import BaseModel, Field, IPvAnyAddress, confloat, conint, constr

    class Cat(BaseModel):
        kind: Literal["cat"]
        lives: conint(ge=1, le=9)

    class Dog(BaseModel):
        kind: Literal["dog"]
        good: bool

    class Booking(BaseModel):
        when: datetime.datetime
        day: datetime.date
        ref: uuid.UUID
        code: constr(pattern=r"^[A-Z]{3}-\d{2}$")
        note: str = Field(max_length=16)
        guests: conint(ge=1, le=12)
        share: confloat(gt=0, le=1)
        pet: Annotated[Union[Cat, Dog], Field(discriminator="kind")]
        tags: list[Literal["quiet", "garden", "late"]] = Field(max_length=2)
        deposit: Optional[conint(ge=0, le=500)]
        # a number, or a string of a pattern with lookaheads (the server holds both)
        price: Decimal
        stay: datetime.timedelta
        host: IPvAnyAddress
        subnet: ipaddress.IPv4Network

    out = []
    for temperature, seed in ((0, None), (0.9, 7)):
        r = client.chat.completions.parse(model=job["chat_model"], messages=job["conversation"], temperature=temperature, seed=seed, response_format=Booking)
        parsed = r.choices[0].message.parsed
        out.append({"parsed_type": type(parsed).__name__, "parsed": parsed.model_dump(mode="json"), "content": r.choices[0].message.content, "finish_reason": r.choices[0].finish_reason})
    return {"schema": to_strict_json_schema(Booking), "answers": out}


def cancelled_stream(client, job):
    """Reads a few chunks of a long completion, then closes the stream (the client drops the connection)."""
    stream = client.completions.create(model=job["model"], prompt=job["prompts"][0], max_tokens=1000, temperature=0, stream=True)
    read = 0
    for _ in stream:
        read += 1
        if read >= job["cancel_after"]:
            break
    stream.close()
    return {"read": read}


async def concurrent(job):
    """Several requests at once from the async client (httpx's async transport)."""
    async with openai.AsyncOpenAI(base_url=job["base_url"], api_key="unused", max_retries=0) as client:
        rs = await asyncio.gather(
            *(client.completions.create(model=job["model"], prompt=p, max_tokens=job["max_tokens"], temperature=0) for p in job["prompts"])
        )
    return [r.choices[0].text for r in rs]


def main() -> None:
    job = json.load(sys.stdin)
    client = openai.OpenAI(base_url=job["base_url"], api_key="unused", max_retries=0)
    m = job["model"]
    if job.get("cancel"):
        json.dump({"cancelled": attempt(lambda: cancelled_stream(client, job))}, sys.stdout)
        return
    report = {
        "openai": openai.__version__,
        "models": attempt(lambda: [x.id for x in client.models.list()]),
        "retrieve": attempt(lambda: client.models.retrieve(m).model_dump(exclude_none=True)),
        "retrieve_missing": attempt(lambda: client.models.retrieve("no-such-model").id),
        "completions": [attempt(lambda p=p: completion(client, job, p)) for p in job["prompts"]],
        "streamed": attempt(lambda: streamed_completion(client, job, job["prompts"][1])),
        "batch": attempt(lambda: batch_completion(client, job)),
        "concurrent": attempt(lambda: asyncio.run(concurrent(job))),
        "errors": {
            "unknown_model": attempt(lambda: client.completions.create(model="no-such-model", prompt="x").id),
            "negative_temperature": attempt(lambda: client.completions.create(model=m, prompt="x", temperature=-1).id),
            "too_long_streamed": attempt(lambda: streamed_completion(client, {**job, "max_tokens": 10**5}, "x")),
            "chat_without_template": attempt(
                lambda: client.chat.completions.create(model=m, messages=[{"role": "user", "content": "hi"}]).id
            ),
        },
    }
    if job.get("chat_model"):
        report["chat"] = attempt(lambda: chat(client, job))
        report["streamed_chat"] = attempt(lambda: streamed_chat(client, job))
        report["json_chat"] = attempt(lambda: json_chat(client, job))
        report["responses"] = attempt(lambda: responses(client, job))
        if job.get("choices"):
            report["guided_chat"] = attempt(lambda: guided_chat(client, job))
        if job.get("tools"):
            report["tool_chat"] = attempt(lambda: tool_chat(client, job))
            report["parsed_tool_chat"] = attempt(lambda: parsed_tool_chat(client, job))
            report["parsed_output_chat"] = attempt(lambda: parsed_output_chat(client, job))
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
