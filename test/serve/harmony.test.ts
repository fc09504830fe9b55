/**
 * gpt-oss's harmony messages read apart (src/serve/harmony.ts, `--reasoning-parser openai_gptoss`).
 * Independent truth: the format as OpenAI's harmony guide writes its examples (a reasoning message
 * then a final one; a preamble and a function call with its `<|constrain|>` type, the recipient
 * before or after the channel; a built-in tool's call), and what each part must become in a chat
 * message. Every text is also fed cut at every position, and in single characters: a stream and a
 * whole read must give the same message.
 */
import { describe, expect, it } from 'vitest';
import { HarmonyReader } from '../../src/serve/harmony.js';
import { JsonCallsReader, NamedCallReader, type CallReader, type ChoiceDelta } from '../../src/serve/tools/call-readers.js';

interface Message {
  reasoning: string;
  content: string;
  calls: Array<{ name: string; arguments: string }>;
}

function messageOf(deltas: ChoiceDelta[]): Message {
  const m: Message = { reasoning: '', content: '', calls: [] };
  for (const d of deltas) {
    if (d.kind === 'reasoning') m.reasoning += d.text;
    else if (d.kind === 'content') m.content += d.text;
    else if (d.kind === 'call') m.calls[d.index] = { name: d.name, arguments: d.arguments };
    else m.calls[d.index].arguments += d.text;
  }
  return m;
}

/** The text read whole, cut at every position in two, and a character at a time: the same message each way. */
const OFFERED = new Set(['get_weather', 'lookup', 'a', 'b', 'f']);

function read(text: string, opts: { include?: boolean; tools?: boolean | ReadonlySet<string>; parallel?: boolean; inner?: () => CallReader } = {}): Message {
  const names = opts.tools instanceof Set ? opts.tools : OFFERED;
  const make = () => new HarmonyReader(opts.include ?? true, opts.inner?.() ?? null, opts.tools ? { names, parallel: opts.parallel ?? true } : null);
  const whole = make();
  const want = messageOf([...whole.push(text), ...whole.end()]);
  const pieces: string[][] = [[...text]];
  for (let cut = 1; cut < text.length; cut++) pieces.push([text.slice(0, cut), text.slice(cut)]);
  for (const parts of pieces) {
    const r = make();
    const deltas = parts.flatMap((p) => r.push(p));
    deltas.push(...r.end());
    expect(messageOf(deltas), `cut into ${parts.length} pieces`).toEqual(want);
  }
  return want;
}

describe('harmony messages', () => {
  it('reasoning then the answer: the analysis channel is the reasoning, the final channel the content; no marker goes out', () => {
    const text = '<|channel|>analysis<|message|>User asks a greeting. Reply briefly.<|end|><|start|>assistant<|channel|>final<|message|>Hello! How can I help?<|return|>';
    expect(read(text)).toEqual({ reasoning: 'User asks a greeting. Reply briefly.', content: 'Hello! How can I help?', calls: [] });
    // without the stop token in the text (it ends the generation), the same
    expect(read(text.replace('<|return|>', ''))).toEqual({ reasoning: 'User asks a greeting. Reply briefly.', content: 'Hello! How can I help?', calls: [] });
  });

  it('include_reasoning false: the reasoning is left out, the answer still found after it', () => {
    const text = '<|channel|>analysis<|message|>think<|end|><|start|>assistant<|channel|>final<|message|>answer';
    expect(read(text, { include: false })).toEqual({ reasoning: '', content: 'answer', calls: [] });
  });

  it('a preamble and a function call, where tools were offered: the preamble is content, the call a call with its arguments', () => {
    const text =
      '<|channel|>analysis<|message|>Need the weather.<|end|>' +
      '<|start|>assistant<|channel|>commentary<|message|>Let me check.<|end|>' +
      '<|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location":"Tokyo"}<|call|>';
    expect(read(text, { tools: true })).toEqual({ reasoning: 'Need the weather.', content: 'Let me check.', calls: [{ name: 'get_weather', arguments: '{"location":"Tokyo"}' }] });
    // the recipient before the channel, as the guide also writes it
    const before = '<|channel|>analysis<|message|>r<|end|><|start|>assistant to=functions.lookup<|channel|>commentary json<|message|>{"q":1}<|call|>';
    expect(read(before, { tools: true })).toEqual({ reasoning: 'r', content: '', calls: [{ name: 'lookup', arguments: '{"q":1}' }] });
    // two calls, each its own index
    const two = '<|channel|>commentary to=functions.a<|message|>{}<|end|><|start|>assistant<|channel|>commentary to=functions.b<|message|>{"x":2}<|call|>';
    expect(read(two, { tools: true }).calls).toEqual([{ name: 'a', arguments: '{}' }, { name: 'b', arguments: '{"x":2}' }]);
  });

  it('a function not offered is content; with parallel_tool_calls false a second call is dropped', () => {
    expect(read('<|channel|>commentary to=functions.unknown<|message|>{"z":0}<|call|>', { tools: true })).toEqual({ reasoning: '', content: '{"z":0}', calls: [] });
    const two = '<|channel|>commentary to=functions.a<|message|>{}<|end|><|start|>assistant<|channel|>commentary to=functions.b<|message|>{"x":2}<|call|>';
    expect(read(two, { tools: true, parallel: false }).calls).toEqual([{ name: 'a', arguments: '{}' }]);
  });

  it('a call the server holds the answer to (a named function): the final channel\'s body is its arguments', () => {
    const text = '<|channel|>analysis<|message|>Use lookup.<|end|><|start|>assistant<|channel|>final<|message|>{"q":"tides"}';
    expect(read(text, { inner: () => new NamedCallReader('lookup') })).toEqual({ reasoning: 'Use lookup.', content: '', calls: [{ name: 'lookup', arguments: '{"q":"tides"}' }] });
  });

  it('a named function or "required": the call gpt-oss writes to functions.NAME is the call; a held final body is its arguments; a preamble stays content', () => {
    const named = { tools: new Set(['lookup']), parallel: false, inner: () => new NamedCallReader('lookup') };
    // its own way of calling (which ends the generation at <|call|>): one call, nothing else held
    const natural = '<|channel|>analysis<|message|>Use lookup.<|end|><|start|>assistant<|channel|>commentary to=functions.lookup <|constrain|>json<|message|>{"q":"tides"}<|call|>';
    expect(read(natural, named)).toEqual({ reasoning: 'Use lookup.', content: '', calls: [{ name: 'lookup', arguments: '{"q":"tides"}' }] });
    expect(read(natural.replace('<|call|>', ''), named)).toEqual({ reasoning: 'Use lookup.', content: '', calls: [{ name: 'lookup', arguments: '{"q":"tides"}' }] });
    // a preamble is content, not the held call's arguments
    const preamble = '<|channel|>commentary<|message|>Looking it up.<|end|><|start|>assistant<|channel|>final<|message|>{"q":"tides"}';
    expect(read(preamble, named)).toEqual({ reasoning: '', content: 'Looking it up.', calls: [{ name: 'lookup', arguments: '{"q":"tides"}' }] });
    // another function than the named one is content; a held body after the model's own call is not a second call
    expect(read('<|channel|>commentary to=functions.f<|message|>{"z":0}<|end|><|start|>assistant<|channel|>final<|message|>{"q":1}', named)).toEqual({
      reasoning: '',
      content: '{"z":0}',
      calls: [{ name: 'lookup', arguments: '{"q":1}' }],
    });
    expect(read('<|channel|>commentary to=functions.lookup<|message|>{"q":1}<|end|><|start|>assistant<|channel|>final<|message|>{"q":2}', named).calls).toEqual([{ name: 'lookup', arguments: '{"q":1}' }]);
    // "required" with parallel calls: the model's calls, then a held body's, numbered in turn
    const required = { tools: true, parallel: true, inner: () => new JsonCallsReader(true, OFFERED) };
    expect(read('<|channel|>commentary to=functions.a<|message|>{}<|end|><|start|>assistant<|channel|>final<|message|>[{"name":"b","arguments":{"x":2}}]', required).calls).toEqual([
      { name: 'a', arguments: '{}' },
      { name: 'b', arguments: '{"x":2}' },
    ]);
  });

  it('a function call where no tools were offered is content; a built-in tool\'s call is reasoning', () => {
    const call = '<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{"location":"Tokyo"}<|call|>';
    expect(read(call)).toEqual({ reasoning: '', content: '{"location":"Tokyo"}', calls: [] });
    const browse = '<|channel|>analysis to=browser.search<|message|>{"query":"tides"}<|end|><|start|>assistant<|channel|>final<|message|>Low tide at 6.';
    expect(read(browse)).toEqual({ reasoning: '{"query":"tides"}', content: 'Low tide at 6.', calls: [] });
  });

  it('cut short by max_tokens: inside the reasoning (all reasoning), inside a header (dropped), inside the answer (what was written)', () => {
    expect(read('<|channel|>analysis<|message|>Thinking ab')).toEqual({ reasoning: 'Thinking ab', content: '', calls: [] });
    expect(read('<|channel|>analysis<|message|>done<|end|><|start|>assistant<|channel|>fin')).toEqual({ reasoning: 'done', content: '', calls: [] });
    expect(read('<|channel|>analysis<|message|>done<|end|><|start|>assistant')).toEqual({ reasoning: 'done', content: '', calls: [] });
    expect(read('<|channel|>final<|message|>Partial ans')).toEqual({ reasoning: '', content: 'Partial ans', calls: [] });
    // a body that ends in text looking like the start of a marker, cut there: the text is kept
    expect(read('<|channel|>final<|message|>a <|')).toEqual({ reasoning: '', content: 'a <|', calls: [] });
  });

  it('text outside the format (no header) is content; markers the model writes mid-answer end its message', () => {
    expect(read('Plain words, no channel.')).toEqual({ reasoning: '', content: 'Plain words, no channel.', calls: [] });
    expect(read('<|channel|>final<|message|>one<|start|>assistant<|channel|>final<|message|>two')).toEqual({ reasoning: '', content: 'onetwo', calls: [] });
    // an unknown channel is content
    expect(read('<|channel|>summary<|message|>s')).toEqual({ reasoning: '', content: 's', calls: [] });
  });

  it('any text, markers out of order included: a stream gives what a whole read gives, and no marker goes out', () => {
    // seeded: words, whitespace, every marker, a recipient, and a marker's first characters
    const parts = ['<|start|>', '<|channel|>', '<|message|>', '<|end|>', '<|return|>', '<|call|>', '<|constrain|>', 'assistant', 'analysis', 'final', 'commentary', ' to=functions.f', ' to=browser.open', 'json', 'ed by the', ' ', '\n', '<|', '|>', 'to', '{"a":1}'];
    let seed = 12345;
    const next = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    for (let t = 0; t < 60; t++) {
      const text = Array.from({ length: 4 + Math.floor(next() * 10) }, () => parts[Math.floor(next() * parts.length)]).join('');
      for (const tools of [false, true]) {
        const m = read(text, { tools });
        for (const marker of ['<|start|>', '<|channel|>', '<|message|>', '<|end|>', '<|return|>', '<|call|>', '<|constrain|>']) expect(`${m.reasoning}${m.content}${m.calls.map((c) => c.arguments).join('')}`, text).not.toContain(marker);
      }
    }
    // text before a marker where a header belongs is content, decided on its first characters
    expect(read('<|channel|>final<|message|>a<|end|>ed by the<|start|> and<|message|> to')).toEqual({ reasoning: '', content: 'aed by the to', calls: [] });
  });

  it('reports when it is inside reasoning (for the Responses API\'s reasoning token count)', () => {
    const r = new HarmonyReader();
    r.push('<|channel|>analysis<|message|>x');
    expect(r.inReasoning).toBe(true);
    r.push('<|end|><|start|>assistant<|channel|>final<|message|>y');
    expect(r.inReasoning).toBe(false);
  });
});
