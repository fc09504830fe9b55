/**
 * Reading tool calls out of generated text. Texts are built from known calls (JSON.stringify of
 * made-up arguments, in each family's written form, with answer text around them); the readers
 * must give back exactly those calls and that text, however the text is split into pieces (as a
 * decoder's tokens split it), so a streamed response and a whole one agree. The combined schema of
 * "required" is checked against Ajv on the tools' own schemas.
 */
import { Ajv } from 'ajv';
import { describe, expect, it } from 'vitest';
import { compileSchema } from '../../src/runtime/generation/json-schema.js';
import { SchemaPrefix } from '../../src/runtime/generation/schema-prefix.js';
import { JsonCallsReader, NamedCallReader, TaggedCallsReader, type CallReader, type ChoiceDelta } from '../../src/serve/tools/call-readers.js';
import { callsSchema, type FunctionTool } from '../../src/serve/tools/call-schema.js';
import { detectToolCallFormat, TOOL_CALL_FORMATS } from '../../src/serve/tools/formats/index.js';
import { mulberry32 } from '../helpers/rng.js';
import { HERMES_TOOLS_CHATML } from './helpers.js';
import { QWEN3_CODER_STYLE } from './qwen3-coder-template.js';
import { GLM45_STYLE } from './glm45-template.js';
import { GRANITE_STYLE } from './granite-template.js';
import { MINIMAX_M2_STYLE } from './minimax-m2-template.js';
import { REASONING_PARSERS, ReasoningReader, reasoningStart } from '../../src/serve/reasoning.js';
import { resolveTools } from '../../src/serve/tools/tool-choice.js';
import { compileRegex, RegexPrefix } from '../../src/runtime/generation/regex-prefix.js';
import type { ReasoningStart } from '../../src/runtime/generation/reasoning-gate.js';

const hermes = TOOL_CALL_FORMATS.get('hermes')!;
const mistral = TOOL_CALL_FORMATS.get('mistral')!;
const deepseek = TOOL_CALL_FORMATS.get('deepseek')!;

interface Outcome {
  content: string;
  reasoning: string;
  calls: Array<{ name: string; arguments: unknown }>;
  ids: string[];
}

/** What the deltas add up to (as a client accumulates a stream), with the arguments parsed. */
function outcome(deltas: ChoiceDelta[]): Outcome {
  let content = '';
  let reasoning = '';
  const calls: Array<{ id: string; name: string; arguments: string }> = [];
  for (const d of deltas) {
    if (d.kind === 'content') content += d.text;
    else if (d.kind === 'reasoning') reasoning += d.text;
    else if (d.kind === 'call') {
      expect(d.index).toBe(calls.length);
      calls.push({ id: d.id, name: d.name, arguments: d.arguments });
    } else calls[d.index].arguments += d.text;
  }
  return { content, reasoning, calls: calls.map((c) => ({ name: c.name, arguments: JSON.parse(c.arguments) as unknown })), ids: calls.map((c) => c.id) };
}

/** The reader's outcome with the text fed in the given pieces. */
function read(make: () => CallReader, pieces: string[]): Outcome {
  const reader = make();
  const deltas = pieces.flatMap((p) => reader.push(p));
  deltas.push(...reader.end());
  const out = outcome(deltas);
  expect(reader.calls).toBe(out.calls.length);
  return out;
}

/** The content and the calls a reader gives for the pieces, arguments as the text sent. */
function argumentTexts(reader: CallReader, pieces: string[]): { content: string; calls: Array<{ name: string; arguments: string }> } {
  let content = '';
  const calls: Array<{ name: string; arguments: string }> = [];
  for (const d of [...pieces.flatMap((p) => reader.push(p)), ...reader.end()]) {
    if (d.kind === 'content') content += d.text;
    else if (d.kind === 'call') calls.push({ name: d.name, arguments: d.arguments });
    else if (d.kind === 'arguments') calls[d.index].arguments += d.text;
  }
  return { content, calls };
}

/** `text` cut at random places into pieces of 1–6 characters (and once into single characters). */
function splits(text: string, seed: number): string[][] {
  const r = mulberry32(seed);
  const out: string[][] = [[text], [...text]];
  for (let k = 0; k < 20; k++) {
    const pieces: string[] = [];
    for (let i = 0; i < text.length; ) {
      const n = 1 + Math.floor(r() * 6);
      pieces.push(text.slice(i, i + n));
      i += n;
    }
    out.push(pieces);
  }
  return out;
}

const CALLS = [
  { name: 'get_weather', arguments: { city: 'Verona', days: 3 } },
  { name: 'send_letter', arguments: { to: 'Juliet', body: 'A "tag" </tool_call> inside a string, and } and ]', urgent: true } },
  { name: 'no_arguments', arguments: {} },
];
/** the tools the calls are of (the readers of held calls take calls of these only) */
const NAMES = new Set(CALLS.map((c) => c.name));
const TOOLS_OF_CALLS: FunctionTool[] = CALLS.map((c) => ({ name: c.name }));

describe('the Hermes format (Qwen2.5, Qwen3)', () => {
  const block = (c: (typeof CALLS)[number]) => `<tool_call>\n${JSON.stringify({ name: c.name, arguments: c.arguments })}\n</tool_call>`;

  it('gives back each call and the answer before it, however the text is split', () => {
    const cases: Array<{ text: string; content: string; calls: typeof CALLS }> = [
      { text: `I shall ask.\n${block(CALLS[0])}`, content: 'I shall ask.', calls: [CALLS[0]] },
      { text: `${block(CALLS[0])}\n${block(CALLS[2])}\n`, content: '', calls: [CALLS[0], CALLS[2]] },
      // the end tag inside a string of the call's JSON does not end the block
      { text: `${block(CALLS[1])} Done.`, content: ' Done.', calls: [CALLS[1]] },
      { text: 'No call at all; a < and a <tool in the text.\n\n', content: 'No call at all; a < and a <tool in the text.\n\n', calls: [] },
      // a block that does not parse stays content, as written
      { text: `${block(CALLS[0])}<tool_call>\n{"name": "broken", "arguments": {</tool_call> after`, content: '<tool_call>\n{"name": "broken", "arguments": {</tool_call> after', calls: [CALLS[0]] },
      // a block cut short by the end of the generation, but whole JSON: still a call (as vLLM reads it)
      { text: `Thus:\n<tool_call>\n${JSON.stringify({ name: 'get_weather', arguments: CALLS[0].arguments })}`, content: 'Thus:', calls: [CALLS[0]] },
      // one cut inside its JSON: content
      { text: 'Thus: <tool_call>\n{"name": "get_weather", "argu', content: 'Thus: <tool_call>\n{"name": "get_weather", "argu', calls: [] },
    ];
    for (const [i, c] of cases.entries()) {
      for (const pieces of splits(c.text, i + 1)) {
        const got = read(() => new TaggedCallsReader(hermes), pieces);
        expect(got.content, JSON.stringify(pieces)).toBe(c.content);
        expect(got.calls).toEqual(c.calls);
        expect(new Set(got.ids).size).toBe(got.ids.length);
        for (const id of got.ids) expect(id).toMatch(/^call_[0-9a-f]{24}$/);
      }
    }
  });

  it('a call whose JSON is not the call shape stays content', () => {
    for (const body of ['{"arguments": {}}', '{"name": 3, "arguments": {}}', '{"name": "f", "arguments": [1]}', '[{"name": "f"}]', '{"name": "f", "arguments": "{not json"}']) {
      const text = `<tool_call>${body}</tool_call>`;
      expect(read(() => new TaggedCallsReader(hermes), [text])).toMatchObject({ content: text, calls: [] });
    }
    // arguments given as JSON text are kept as that text
    const r = new TaggedCallsReader(hermes);
    const deltas = [...r.push('<tool_call>{"name": "f", "parameters": "{\\"a\\": 1}"}</tool_call>'), ...r.end()];
    expect(deltas).toMatchObject([{ kind: 'call', name: 'f', arguments: '{"a": 1}' }]);
  });

  it('blocks the server holds stream their call as it is written, and read as the unheld ones do', () => {
    const held = () => new TaggedCallsReader(hermes, TOOLS_OF_CALLS, { held: true });
    const cases: Array<{ text: string; content: string; calls: typeof CALLS }> = [
      { text: `I shall ask.\n${block(CALLS[0])}`, content: 'I shall ask.', calls: [CALLS[0]] },
      { text: `${block(CALLS[0])}\n${block(CALLS[2])}\n`, content: '', calls: [CALLS[0], CALLS[2]] },
      { text: `${block(CALLS[1])} Done.`, content: ' Done.', calls: [CALLS[1]] },
      { text: `Thus:\n<tool_call>\n${JSON.stringify({ name: 'get_weather', arguments: CALLS[0].arguments })}`, content: 'Thus:', calls: [CALLS[0]] },
      // a block whose JSON is not a call of the tools stays content as written, its end tag too
      { text: `<tool_call>\n{"name": "other", "arguments": {}}\n</tool_call> after`, content: '<tool_call>\n{"name": "other", "arguments": {}}\n</tool_call> after', calls: [] },
      { text: 'Thus: <tool_call>\n{"na', content: 'Thus: <tool_call>\n{"na', calls: [] },
    ];
    for (const [i, c] of cases.entries()) {
      for (const pieces of splits(c.text, i + 11)) {
        const got = read(held, pieces);
        expect(got.content, JSON.stringify(pieces)).toBe(c.content);
        expect(got.calls).toEqual(c.calls);
      }
    }
    const reader = held();
    expect(reader.push('Let me look.\n<tool_call>\n{"name": "get_weather", "arguments": {"ci')).toMatchObject([
      { kind: 'content', text: 'Let me look.' },
      { kind: 'call', index: 0, name: 'get_weather', arguments: '{"ci' },
    ]);
    expect(reader.push('ty": "Verona"}}\n</tool_')).toEqual([{ kind: 'arguments', index: 0, text: 'ty": "Verona"}' }]);
    expect([...reader.push('call>\n'), ...reader.end()]).toEqual([]);
    // cut inside the arguments: the call with what was written of them
    const cut = held();
    expect([...cut.push('<tool_call>\n{"name": "send_letter", "arguments": {"to": '), ...cut.end()]).toMatchObject([{ kind: 'call', name: 'send_letter', arguments: '{"to":' }]);
  });

  it('parallel_tool_calls false: the first call only, whatever the format', () => {
    const two = `${block(CALLS[0])}\n${block(CALLS[2])}`;
    for (const held of [false, true]) {
      for (const pieces of splits(two, 21)) {
        expect(read(() => new TaggedCallsReader(hermes, TOOLS_OF_CALLS, { held, parallel: false }), pieces)).toMatchObject({ content: '', calls: [CALLS[0]] });
      }
    }
  });

  it('is the format a Hermes template implies', () => {
    expect(detectToolCallFormat(HERMES_TOOLS_CHATML)).toBe(hermes);
    expect(detectToolCallFormat('{% for m in messages %}{{ m.content }}{% endfor %}')).toBeNull();
    expect(detectToolCallFormat(null)).toBeNull();
  });
});

describe('the Mistral format', () => {
  it('reads the JSON array after [TOOL_CALLS], and the newer name[ARGS]{…} form', () => {
    const array = `[TOOL_CALLS] ${JSON.stringify(CALLS.slice(0, 2))}`;
    const newer = CALLS.map((c) => `[TOOL_CALLS]${c.name}[ARGS]${JSON.stringify(c.arguments)}`).join('');
    for (const [text, calls] of [
      [array, CALLS.slice(0, 2)],
      [newer, CALLS],
      [`Let me see. ${array}`, CALLS.slice(0, 2)],
    ] as const) {
      for (const pieces of splits(text, 7)) {
        const got = read(() => new TaggedCallsReader(mistral), pieces);
        expect(got.calls).toEqual(calls);
        expect(got.content).toBe(text.startsWith('Let') ? 'Let me see.' : '');
      }
    }
    expect(read(() => new TaggedCallsReader(mistral), ['[TOOL_CALLS] [{"name": "f", "argu'])).toMatchObject({ content: '[TOOL_CALLS] [{"name": "f", "argu', calls: [] });
    expect(read(() => new TaggedCallsReader(mistral), ['[TOOL_CALLS]f[ARGS]{oops'])).toMatchObject({ calls: [] });
    expect(detectToolCallFormat("{{ '[TOOL_CALLS]' + name + '[ARGS]' + arguments }}")).toBe(mistral);
  });

  it('where the template writes the calls as one JSON array (Mixtral-8x22B), the array the model opens is held to calls of the tools', () => {
    const arrays = detectToolCallFormat("{{ '[TOOL_CALLS] [' }}{% for c in tool_calls %}{{ c|tojson }}{% endfor %}{{ ']' }}")!;
    expect(arrays).toMatchObject({ name: 'mistral', heldCall: 'array', start: '[TOOL_CALLS]' });
    const tools = [
      { type: 'function' as const, function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { enum: ['Verona', 'Mantua'] } }, required: ['city'], additionalProperties: false } } },
      { type: 'function' as const, function: { name: 'ring', parameters: {} } },
    ];
    for (const parallel of [true, false]) {
      const held = resolveTools({ tools, tool_choice: 'auto', parallel_tool_calls: parallel }, arrays, 'm', undefined).responseFormat as { jsonSchema: object; topLevel: string; trigger: string; once: boolean };
      expect(held).toMatchObject({ topLevel: 'any', trigger: '[TOOL_CALLS]', once: true });
      const validate = new Ajv({ strict: false }).compile(held.jsonSchema);
      const call = { name: 'get_weather', arguments: { city: 'Verona' } };
      expect(validate([call])).toBe(true);
      expect(validate([call, { name: 'ring', arguments: {} }])).toBe(parallel);
      expect(validate([])).toBe(false);
      expect(validate(call)).toBe(false);
      expect(validate([{ name: 'get_weather', arguments: { city: 'Rome' } }])).toBe(false);
      expect(validate([{ name: 'other', arguments: {} }])).toBe(false);
      // and what the constraint follows agrees (the schema compiles to the state it starts from)
      const state = new SchemaPrefix(compileSchema(held.jsonSchema, 'any'));
      expect(state.push(JSON.stringify([call])) && state.complete).toBe(true);
    }
    // a held array streams its calls as they are written
    const reader = new TaggedCallsReader(arrays, TOOLS_OF_CALLS, { held: true });
    expect(reader.push('[TOOL_CALLS] [{"name": "get_weather", "arguments": {"city"')).toMatchObject([{ kind: 'call', index: 0, name: 'get_weather', arguments: '{"city"' }]);
    const text = `Let me see. [TOOL_CALLS] ${JSON.stringify(CALLS, null, 1)}`;
    for (const pieces of splits(text, 8)) {
      expect(read(() => new TaggedCallsReader(arrays, TOOLS_OF_CALLS, { held: true }), pieces)).toMatchObject({ content: 'Let me see.', calls: CALLS });
    }
    // the [ARGS] form, or the format named without a template, is read but not held
    expect(resolveTools({ tools, tool_choice: 'auto' }, mistral, 'm', undefined).responseFormat).toBeUndefined();
  });
});

describe('the Granite format', () => {
  const granite = TOOL_CALL_FORMATS.get('granite')!;

  it('reads the JSON array after <|tool_call|>, however the text is split; the array the model opens is held to calls of the tools and streams', () => {
    const text = `Let me see.<|tool_call|>${JSON.stringify(CALLS)}`;
    for (const held of [false, true]) {
      for (const pieces of splits(text, 9)) {
        expect(read(() => new TaggedCallsReader(granite, TOOLS_OF_CALLS, { held }), pieces)).toMatchObject({ content: 'Let me see.', calls: CALLS });
      }
    }
    // one call not in an array is read too; an array cut inside a call, or of no calls, stays content
    expect(read(() => new TaggedCallsReader(granite), [`<|tool_call|>${JSON.stringify(CALLS[0])}`])).toMatchObject({ content: '', calls: [CALLS[0]] });
    for (const bad of ['<|tool_call|>[{"name": "f", "argu', '<|tool_call|>[]', '<|tool_call|>[{"function": "f"}]']) {
      expect(read(() => new TaggedCallsReader(granite), [bad])).toMatchObject({ content: bad, calls: [] });
    }
    // held: a call's first delta as soon as its name is written
    expect(new TaggedCallsReader(granite, TOOLS_OF_CALLS, { held: true }).push('<|tool_call|>[{"name": "get_weather", "arguments": {"city"')).toMatchObject([{ kind: 'call', index: 0, name: 'get_weather', arguments: '{"city"' }]);
    const format = detectToolCallFormat(GRANITE_STYLE)!;
    expect(format).toBe(granite);
    const choice = resolveTools({ tools: [{ type: 'function', function: { name: 'ring', parameters: {} } }], tool_choice: 'auto' }, format, 'm', undefined);
    expect(choice.responseFormat).toMatchObject({ topLevel: 'any', trigger: '<|tool_call|>', once: true });
  });
});

describe('the DeepSeek format', () => {
  const [begin, end, callBegin, callEnd, sep] = ['<｜tool▁calls▁begin｜>', '<｜tool▁calls▁end｜>', '<｜tool▁call▁begin｜>', '<｜tool▁call▁end｜>', '<｜tool▁sep｜>'];
  const v3 = (c: (typeof CALLS)[number]) => `${callBegin}function${sep}${c.name}\n\`\`\`json\n${JSON.stringify(c.arguments)}\n\`\`\`${callEnd}`;
  const v31 = (c: (typeof CALLS)[number]) => `${callBegin}${c.name}${sep}${JSON.stringify(c.arguments)}${callEnd}`;

  it('reads V3’s fenced calls and V3.1’s plain ones, however the text is split', () => {
    for (const form of [v3, v31]) {
      const text = `Let me look.${begin}${CALLS.map(form).join('\n')}${end}`;
      for (const pieces of splits(text, 3)) expect(read(() => new TaggedCallsReader(deepseek), pieces)).toMatchObject({ content: 'Let me look.', calls: CALLS });
      // cut after the last call's end: still the calls
      const cut = `${begin}${form(CALLS[0])}`;
      expect(read(() => new TaggedCallsReader(deepseek), [...cut])).toMatchObject({ content: '', calls: [CALLS[0]] });
    }
    // arguments that are not JSON, or no separator: the block stays content
    for (const bad of [`${begin}${callBegin}f${sep}{oops${callEnd}${end}`, `${begin}${callBegin}f{}${callEnd}${end}`]) {
      expect(read(() => new TaggedCallsReader(deepseek), [bad])).toMatchObject({ content: bad, calls: [] });
    }
    expect(detectToolCallFormat(`{{'${begin}'}}`)).toBe(deepseek);
  });

  it('a held block streams as it is written: the call when its name is complete, its arguments piece by piece; the same calls as the whole-block reader', () => {
    // the templates' own spellings pick the form (V3: the type and a code block; V3.1: the name)
    const formV3 = detectToolCallFormat(`{{'${begin}${callBegin}' + tool.type + '${sep}' + name + '\\n\`\`\`json\\n'}}`)!;
    const formV31 = detectToolCallFormat(`{{'${begin}${callBegin}' + name + '${sep}' + arguments}}`)!;
    expect([formV3.name, formV31.name, formV3 === formV31]).toEqual(['deepseek', 'deepseek', false]);
    for (const [format, form, between] of [[formV3, v3, '\n'], [formV31, v31, '']] as const) {
      expect(format.streamer).toBeDefined();
      const text = `Let me look.${begin}${CALLS.map(form).join(between)}${end} Done.`;
      for (const pieces of splits(text, 5)) {
        expect(read(() => new TaggedCallsReader(format, TOOLS_OF_CALLS, { held: true }), pieces)).toMatchObject({ content: 'Let me look. Done.', calls: CALLS });
      }
      // the call goes out once its name is written, before its arguments are complete
      const reader = new TaggedCallsReader(format, TOOLS_OF_CALLS, { held: true });
      const open = form(CALLS[0]);
      const deltas = reader.push(`${begin}${open.slice(0, open.indexOf('"Verona"') + 4)}`);
      expect(deltas[0]).toMatchObject({ kind: 'call', index: 0, name: 'get_weather' });
      expect(deltas.map((d) => (d.kind === 'call' ? d.arguments : d.kind === 'arguments' ? d.text : '')).join('')).toBe('{"city":"Ver');
      // cut by the end of the generation: the arguments written so far
      const cut = reader.end();
      expect(cut).toEqual([]);
      // a block that names no tool: content, as written
      const unknown = `${begin}${form({ name: 'launch', arguments: {} } as unknown as (typeof CALLS)[number])}${end}`;
      expect(read(() => new TaggedCallsReader(format, TOOLS_OF_CALLS, { held: true }), [...unknown])).toMatchObject({ content: unknown, calls: [] });
      // parallel_tool_calls false: the first call only
      const two = `${begin}${CALLS.slice(0, 2).map(form).join(between)}${end}`;
      expect(read(() => new TaggedCallsReader(format, TOOLS_OF_CALLS, { held: true, parallel: false }), [...two])).toMatchObject({ content: '', calls: [CALLS[0]] });
      // the request's choice holds the block to the tools' calls after the block's start
      const choice = resolveTools({ tools: [{ type: 'function', function: { name: 'ring', parameters: { type: 'object', properties: { times: { type: 'integer' } } } } }], tool_choice: 'auto', parallel_tool_calls: false }, format, 'm', undefined);
      expect(choice.mode).toMatchObject({ kind: 'auto', held: true });
      expect(choice.responseFormat).toMatchObject({ trigger: begin, once: true, taggedJson: { repeat: false, close: end } });
    }
  });
});

describe('the Qwen3-Coder format', () => {
  const qwen3Coder = TOOL_CALL_FORMATS.get('qwen3_coder')!;
  const TOOLS: FunctionTool[] = [
    {
      name: 'write_file',
      parameters: {
        type: 'object',
        properties: { path: { type: 'string' }, content: { type: 'string' }, mode: { type: 'integer' }, ratio: { type: 'number' }, force: { type: 'boolean' }, tags: { type: 'array' }, meta: { type: 'object' }, note: { type: ['string', 'null'] } },
      },
    },
    { name: 'no_arguments', parameters: { type: 'object', properties: {} } },
  ];
  /** a call written as Qwen3-Coder's template writes one (a value: its JSON when an object or array, else its text) */
  const block = (name: string, args: Record<string, unknown>) =>
    `<tool_call>\n<function=${name}>\n${Object.entries(args)
      .map(([k, v]) => `<parameter=${k}>\n${v !== null && typeof v === 'object' ? JSON.stringify(v) : String(v)}\n</parameter>\n`)
      .join('')}</function>\n</tool_call>`;
  const WRITE = { path: 'src/a.ts', content: 'line one\n  <b>indented</b> "quoted"\nline three', mode: 644, ratio: 0.5, force: true, tags: ['x', 'y'], meta: { a: [1, 2] }, note: null };

  it('gives back each call with its arguments typed by the tool’s schema, however the text is split', () => {
    const cases: Array<{ text: string; content: string; calls: Array<{ name: string; arguments: unknown }> }> = [
      { text: `I will write it.\n${block('write_file', WRITE)}`, content: 'I will write it.', calls: [{ name: 'write_file', arguments: WRITE }] },
      { text: `${block('no_arguments', {})}\n${block('write_file', { path: '02134', mode: '0755x' })}`, content: '', calls: [{ name: 'no_arguments', arguments: {} }, { name: 'write_file', arguments: { path: '02134', mode: '0755x' } }] },
      // a function not among the tools, and parameters its schema does not name: text as written
      { text: block('other', { n: 3, b: true }), content: '', calls: [{ name: 'other', arguments: { n: '3', b: 'true' } }] },
      // Python's True (what a template writes with |string) is a boolean too
      { text: block('write_file', { force: 'True' }), content: '', calls: [{ name: 'write_file', arguments: { force: true } }] },
      // a block without a function stays content
      { text: 'Nothing: <tool_call>\nhello\n</tool_call>', content: 'Nothing: <tool_call>\nhello\n</tool_call>', calls: [] },
    ];
    for (const [i, c] of cases.entries()) {
      for (const pieces of splits(c.text, 40 + i)) {
        const got = read(() => new TaggedCallsReader(qwen3Coder, TOOLS), pieces);
        expect(got.content, JSON.stringify(pieces)).toBe(c.content);
        expect(got.calls).toEqual(c.calls);
      }
    }
    // the arguments keep the order they were written in
    const r = new TaggedCallsReader(qwen3Coder, TOOLS);
    const deltas = [...r.push(block('write_file', { mode: 1, path: 'p' })), ...r.end()];
    expect(deltas).toMatchObject([{ kind: 'call', name: 'write_file', arguments: '{"mode":1,"path":"p"}' }]);
    // a call cut short by the end of the generation: what was written of it (as vLLM reads it)
    const cut = read(() => new TaggedCallsReader(qwen3Coder, TOOLS), ['<tool_call>\n<function=write_file>\n<parameter=path>\na.ts\n</parameter>\n<parameter=mode>\n7']);
    expect(cut.calls).toEqual([{ name: 'write_file', arguments: { path: 'a.ts', mode: 7 } }]);
  });

  it('a block the server holds streams its call as it is written: text values piece by piece, typed ones when their parameter closes', () => {
    const reader = new TaggedCallsReader(qwen3Coder, TOOLS, { held: true });
    const steps: Array<[string, ChoiceDelta[]]> = [
      ['Writing.\n<tool_call>\n<function=write_', [{ kind: 'content', text: 'Writing.' }]],
      ['file>\n<parameter=mode>\n6', [{ kind: 'call', index: 0, id: expect.any(String) as string, name: 'write_file', arguments: '{' }]],
      ['44\n</parameter>\n<parameter=content>\nline one\n', [{ kind: 'arguments', index: 0, text: '"mode":644,"content":"line one' }]],
      // (the line break waited: it could have been the format's, before </parameter>)
      ['"two"\n</param', [{ kind: 'arguments', index: 0, text: '\\n\\"two\\"' }]],
      ['eter>\n<parameter=note>\nNo', [{ kind: 'arguments', index: 0, text: '"' }]],
      // (a nullable text that could still be None waits)
      ['ne\n</parameter>\n</function>\n</tool_call>', [{ kind: 'arguments', index: 0, text: ',"note":null}' }]],
    ];
    for (const [text, deltas] of steps) expect(reader.push(text), text).toEqual(deltas);
    expect(reader.end()).toEqual([]);
    // cut short: the call with what was written of its arguments
    const cut = argumentTexts(new TaggedCallsReader(qwen3Coder, TOOLS, { held: true }), ['<tool_call>\n<function=write_file>\n<parameter=path>\na.ts\n</parameter>\n<parameter=content>\nhalf a li']);
    expect(cut).toEqual({ content: '', calls: [{ name: 'write_file', arguments: '{"path":"a.ts","content":"half a li' }] });
    // a block that is no call of the tools stays content as written
    const text = 'Nothing: <tool_call>\n<function=other>\n</function>\n</tool_call> done';
    for (const pieces of splits(text, 3)) expect(argumentTexts(new TaggedCallsReader(qwen3Coder, TOOLS, { held: true }), pieces)).toEqual({ content: text, calls: [] });
    // and the blocks after it are still read
    for (const pieces of splits(`${text} ${block('write_file', { path: 'p' })}`, 4)) {
      expect(argumentTexts(new TaggedCallsReader(qwen3Coder, TOOLS, { held: true }), pieces)).toEqual({ content: text, calls: [{ name: 'write_file', arguments: '{"path":"p"}' }] });
    }
  });

  it('the held pattern: calls written as the template writes them match it and read back to their arguments; other names, types or end tags inside values do not', () => {
    const pattern = qwen3Coder.heldPattern!(TOOLS);
    const full = new RegExp(`^(?:${pattern})$`, 'u');
    const regex = compileRegex(pattern);
    const held = (text: string) => {
      const state = new RegexPrefix(regex);
      return state.push(text) && state.complete;
    };
    const r = mulberry32(9);
    const pick = <T,>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)];
    for (let k = 0; k < 200; k++) {
      const args: Record<string, unknown> = {};
      if (r() < 0.7) args.path = pick(['a.ts', 'dir/b c.txt', 'üñí', '<b>', 'x\ny']);
      if (r() < 0.5) args.mode = pick([0, 644, -3]);
      if (r() < 0.5) args.ratio = pick([0.5, 2, -1.25, 1e-3]);
      if (r() < 0.5) args.force = r() < 0.5;
      if (r() < 0.3) args.tags = ['x', 'y'];
      if (r() < 0.3) args.meta = { a: [1, 2] };
      if (r() < 0.3) args.note = pick([null, 'plain']);
      // the template writes booleans with |string (Python: True), objects and lists as JSON
      const written = (v: unknown) => (v === null ? 'None' : typeof v === 'boolean' ? (v ? 'True' : 'False') : typeof v === 'object' ? JSON.stringify(v) : String(v));
      const text = block('write_file', Object.fromEntries(Object.entries(args).map(([key, v]) => [key, written(v)])));
      const body = text.slice('<tool_call>'.length);
      expect(full.test(body), body).toBe(true);
      expect(held(body), body).toBe(true);
      const back = read(() => new TaggedCallsReader(qwen3Coder, TOOLS), [text]);
      expect(back.calls).toEqual([{ name: 'write_file', arguments: args }]);
      // read as the server reads a block it holds, as it is written: the same arguments, to the character
      const whole = argumentTexts(new TaggedCallsReader(qwen3Coder, TOOLS), [text]);
      for (const pieces of splits(text, k).slice(0, 4)) expect(argumentTexts(new TaggedCallsReader(qwen3Coder, TOOLS, { held: true }), pieces)).toEqual(whole);
    }
    for (const bad of [block('other_tool', {}), block('write_file', { mode: 'seven' }), block('write_file', { force: 'yes' }), block('write_file', { unknown_param: 'x' }), block('write_file', { path: 'a </tool_call> b' }), block('write_file', { path: 'a </parameter> b' })]) {
      const body = bad.slice('<tool_call>'.length);
      expect(full.test(body), body).toBe(false);
      expect(held(body), body).toBe(false);
    }
  });

  it('a tool set too large for the bounded pattern is held by the unbounded one; only one too large for that is left free', () => {
    const toolSet = (n: number) =>
      Array.from({ length: n }, (_, i) => ({
        type: 'function' as const,
        function: { name: `tool_${i}`, parameters: { type: 'object', properties: Object.fromEntries(Array.from({ length: 20 }, (_, k) => [`p${k}`, { type: k % 4 === 0 ? 'integer' : 'string' }])) } },
      }));
    const held = (n: number) => (resolveTools({ tools: toolSet(n), tool_choice: 'auto' }, qwen3Coder, 'm', undefined).responseFormat as { regex?: string } | undefined)?.regex;
    expect(held(1)).toMatch(/\{0,20\}/);
    const large = held(20)!;
    expect(large).toBeDefined();
    expect(large).not.toMatch(/\{0,\d+\}/);
    const state = new RegexPrefix(compileRegex(large));
    expect(state.push('\n<function=tool_19>\n<parameter=p0>\n7\n</parameter>\n<parameter=p1>\nany text\n</parameter>\n</function>\n</tool_call>') && state.complete).toBe(true);
    expect(new RegexPrefix(compileRegex(large)).push('\n<function=tool_19>\n<parameter=p0>\nseven')).toBe(false);
    // past 64 K characters of pattern: free
    expect(held(80)).toBeUndefined();
  });

  it('is the format Qwen3-Coder’s template implies, not Hermes’s, though both hold <tool_call>', () => {
    expect(detectToolCallFormat(QWEN3_CODER_STYLE)).toBe(qwen3Coder);
    expect(detectToolCallFormat(HERMES_TOOLS_CHATML)).toBe(hermes);
    // GLM-4.5's form (<tool_call>name<arg_key>…</arg_key><arg_value>…</arg_value>) is neither
    expect(detectToolCallFormat(GLM45_STYLE)).toBe(TOOL_CALL_FORMATS.get('glm45'));
  });
});

describe('the GLM-4.5 format', () => {
  const glm45 = TOOL_CALL_FORMATS.get('glm45')!;
  const TOOLS: FunctionTool[] = [
    {
      name: 'write_file',
      parameters: {
        type: 'object',
        properties: { path: { type: 'string' }, content: { type: 'string' }, mode: { type: 'integer' }, ratio: { type: 'number' }, force: { type: 'boolean' }, level: { enum: ['low', 'high', 3] }, tags: { type: 'array' }, meta: { type: 'object' }, note: { type: ['string', 'null'] } },
      },
    },
    { name: 'no_arguments', parameters: { type: 'object', properties: {} } },
  ];
  /** a call written as GLM-4.5's template writes one (a string value as its text, any other as JSON) */
  const block = (name: string, args: Record<string, unknown>) =>
    `<tool_call>${name}\n${Object.entries(args)
      .map(([k, v]) => `<arg_key>${k}</arg_key>\n<arg_value>${typeof v === 'string' ? v : JSON.stringify(v)}</arg_value>\n`)
      .join('')}</tool_call>`;
  const WRITE = { path: 'src/a.ts', content: 'line one\n  <b>indented</b> "quoted" 42\nline three', mode: 644, ratio: 0.5, force: true, level: 3, tags: ['x', 'y'], meta: { a: [1, 2] }, note: null };

  it('gives back each call with its arguments as written: strings as text, other values as JSON, however the text is split', () => {
    const cases: Array<{ text: string; content: string; calls: Array<{ name: string; arguments: unknown }> }> = [
      { text: `I will write it.\n${block('write_file', WRITE)}`, content: 'I will write it.', calls: [{ name: 'write_file', arguments: WRITE }] },
      // a string parameter whose text looks like a number stays text; several blocks are several calls
      { text: `${block('no_arguments', {})}\n${block('write_file', { path: '02134', content: 'true' })}`, content: '', calls: [{ name: 'no_arguments', arguments: {} }, { name: 'write_file', arguments: { path: '02134', content: 'true' } }] },
      // a function not among the tools: JSON where a value is JSON, Python's literals, else text (vLLM's glm45 reading)
      { text: block('other', { n: 3, b: 'True', s: 'plain words', o: { k: [1] } }), content: '', calls: [{ name: 'other', arguments: { n: 3, b: true, s: 'plain words', o: { k: [1] } } }] },
      // the layout loosened (spaces for the line breaks), as quantised models have been seen to write it
      { text: '<tool_call>write_file <arg_key>mode</arg_key> <arg_value>7</arg_value> </tool_call>', content: '', calls: [{ name: 'write_file', arguments: { mode: 7 } }] },
      // a Hermes block, or text between the arguments, is no call of this form: content as written
      { text: 'Nothing: <tool_call>\n{"name": "x", "arguments": {}}\n</tool_call>', content: 'Nothing: <tool_call>\n{"name": "x", "arguments": {}}\n</tool_call>', calls: [] },
      { text: '<tool_call>f\n<arg_key>a</arg_key><arg_value>1</arg_value> stray <arg_key>b</arg_key><arg_value>2</arg_value></tool_call>', content: '<tool_call>f\n<arg_key>a</arg_key><arg_value>1</arg_value> stray <arg_key>b</arg_key><arg_value>2</arg_value></tool_call>', calls: [] },
    ];
    for (const [i, c] of cases.entries()) {
      for (const pieces of splits(c.text, 60 + i)) {
        const got = read(() => new TaggedCallsReader(glm45, TOOLS), pieces);
        expect(got.content, JSON.stringify(pieces)).toBe(c.content);
        expect(got.calls).toEqual(c.calls);
      }
    }
    // a call cut short by the end of the generation: what was written of it
    const cut = read(() => new TaggedCallsReader(glm45, TOOLS), ['<tool_call>write_file\n<arg_key>path</arg_key>\n<arg_value>a.ts</arg_value>\n<arg_key>mode</arg_key>\n<arg_value>7']);
    expect(cut.calls).toEqual([{ name: 'write_file', arguments: { path: 'a.ts', mode: 7 } }]);
  });

  it('a block the server holds streams its call as it is written: string values piece by piece, other values when they close', () => {
    const reader = new TaggedCallsReader(glm45, TOOLS, { held: true });
    const steps: Array<[string, ChoiceDelta[]]> = [
      ['Writing.\n<tool_call>write_', [{ kind: 'content', text: 'Writing.' }]],
      ['file\n<arg_key>mode</arg_key>\n<arg_value>6', [{ kind: 'call', index: 0, id: expect.any(String) as string, name: 'write_file', arguments: '{' }]],
      ['44</arg_value>\n<arg_key>content</arg_key>\n<arg_value>line one\n', [{ kind: 'arguments', index: 0, text: '"mode":644,"content":"line one\\n' }]],
      // (a possible start of </arg_value> waits)
      ['"two"</arg_', [{ kind: 'arguments', index: 0, text: '\\"two\\"' }]],
      ['value>\n<arg_key>note</arg_key>\n<arg_value>nu', [{ kind: 'arguments', index: 0, text: '"' }]],
      // (a nullable string that could still be null waits)
      ['ll</arg_value>\n</tool_call>', [{ kind: 'arguments', index: 0, text: ',"note":null}' }]],
    ];
    for (const [text, deltas] of steps) expect(reader.push(text), text).toEqual(deltas);
    expect(reader.end()).toEqual([]);
    // cut short: the call with what was written of its arguments
    const cut = argumentTexts(new TaggedCallsReader(glm45, TOOLS, { held: true }), ['<tool_call>write_file\n<arg_key>path</arg_key>\n<arg_value>a.ts</arg_value>\n<arg_key>content</arg_key>\n<arg_value>half a li']);
    expect(cut).toEqual({ content: '', calls: [{ name: 'write_file', arguments: '{"path":"a.ts","content":"half a li' }] });
    // a block that is no call of the tools stays content as written, and the blocks after it are still read
    const text = 'Nothing: <tool_call>other\n</tool_call> done';
    for (const pieces of splits(text, 3)) expect(argumentTexts(new TaggedCallsReader(glm45, TOOLS, { held: true }), pieces)).toEqual({ content: text, calls: [] });
    for (const pieces of splits(`${text} ${block('write_file', { path: 'p' })}`, 4)) {
      expect(argumentTexts(new TaggedCallsReader(glm45, TOOLS, { held: true }), pieces)).toEqual({ content: text, calls: [{ name: 'write_file', arguments: '{"path":"p"}' }] });
    }
    // two blocks, two calls
    const two = `${block('no_arguments', {})}\n${block('write_file', { path: 'p', mode: 1 })}`;
    for (const pieces of splits(two, 5)) {
      expect(argumentTexts(new TaggedCallsReader(glm45, TOOLS, { held: true }), pieces)).toEqual({ content: '', calls: [{ name: 'no_arguments', arguments: '{}' }, { name: 'write_file', arguments: '{"path":"p","mode":1}' }] });
    }
  });

  it('the held pattern: calls written as the template writes them match it and read back to their arguments; other names, types, keys or end tags inside values do not', () => {
    const pattern = glm45.heldPattern!(TOOLS);
    const full = new RegExp(`^(?:${pattern})$`, 'u');
    const regex = compileRegex(pattern);
    const held = (text: string) => {
      const state = new RegexPrefix(regex);
      return state.push(text) && state.complete;
    };
    const r = mulberry32(11);
    const pick = <T,>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)];
    for (let k = 0; k < 200; k++) {
      const args: Record<string, unknown> = {};
      if (r() < 0.7) args.path = pick(['a.ts', 'dir/b c.txt', 'üñí', '<b>', 'x\ny', '12']);
      if (r() < 0.5) args.mode = pick([0, 644, -3]);
      if (r() < 0.5) args.ratio = pick([0.5, 2, -1.25, 1e-3]);
      if (r() < 0.5) args.force = r() < 0.5;
      if (r() < 0.4) args.level = pick(['low', 'high', 3]);
      if (r() < 0.3) args.tags = ['x', 'y'];
      if (r() < 0.3) args.meta = { a: [1, 2] };
      if (r() < 0.3) args.note = pick([null, 'plain']);
      const text = block('write_file', args);
      const body = text.slice('<tool_call>'.length);
      expect(full.test(body), body).toBe(true);
      expect(held(body), body).toBe(true);
      expect(read(() => new TaggedCallsReader(glm45, TOOLS), [text]).calls).toEqual([{ name: 'write_file', arguments: args }]);
      // read as the server reads a block it holds, as it is written: the same arguments, to the character
      const whole = argumentTexts(new TaggedCallsReader(glm45, TOOLS), [text]);
      for (const pieces of splits(text, k).slice(0, 4)) expect(argumentTexts(new TaggedCallsReader(glm45, TOOLS, { held: true }), pieces)).toEqual(whole);
    }
    expect(held('no_arguments\n</tool_call>')).toBe(true);
    for (const bad of [block('other_tool', {}), block('write_file', { mode: 'seven' }), block('write_file', { mode: 1.5 }), block('write_file', { force: 'True' }), block('write_file', { level: 'middle' }), block('write_file', { unknown_key: 'x' }), block('write_file', { path: 'a </tool_call> b' }), block('write_file', { path: 'a </arg_value> b' })]) {
      const body = bad.slice('<tool_call>'.length);
      expect(full.test(body), body).toBe(false);
      expect(held(body), body).toBe(false);
    }
    // "auto" holds the blocks the model opens to this pattern
    const choice = resolveTools({ tools: TOOLS.map((f) => ({ type: 'function' as const, function: f })), tool_choice: 'auto' }, glm45, 'm', undefined);
    expect(choice.responseFormat).toMatchObject({ regex: pattern, trigger: '<tool_call>' });
  });
});

describe('the MiniMax-M2 format', () => {
  const minimax = TOOL_CALL_FORMATS.get('minimax_m2')!;
  const TOOLS: FunctionTool[] = [
    {
      name: 'write_file',
      parameters: {
        type: 'object',
        properties: {
          path: { type: 'string' },
          content: { type: 'string' },
          mode: { type: 'integer' },
          ratio: { type: 'number' },
          force: { type: 'boolean' },
          level: { enum: ['low', 'high', 3] },
          tags: { type: 'array' },
          meta: { type: 'object' },
          note: { type: ['string', 'null'] },
          size: { anyOf: [{ type: 'integer' }, { type: 'string' }] },
        },
      },
    },
    { name: 'no_arguments', parameters: { type: 'object', properties: {} } },
  ];
  /** calls written as MiniMax-M2's template writes them, in one block (a string value as its text, any other as JSON) */
  const block = (...calls: Array<[string, Record<string, unknown>]>) =>
    `<minimax:tool_call>\n${calls
      .map(([name, args]) => `<invoke name="${name}">\n${Object.entries(args).map(([k, v]) => `<parameter name="${k}">${typeof v === 'string' ? v : JSON.stringify(v)}</parameter>\n`).join('')}</invoke>\n`)
      .join('')}</minimax:tool_call>`;
  const WRITE = { path: 'src/a.ts', content: 'line one\n  <b>indented</b> "quoted" 42\nline three', mode: 644, ratio: 0.5, force: true, level: 3, tags: ['x', 'y'], meta: { a: [1, 2] }, note: null, size: 12 };

  it('is the format a MiniMax-M2-style template implies', () => {
    expect(detectToolCallFormat(MINIMAX_M2_STYLE)).toBe(minimax);
    for (const other of [GLM45_STYLE, QWEN3_CODER_STYLE, HERMES_TOOLS_CHATML, GRANITE_STYLE]) expect(detectToolCallFormat(other)).not.toBe(minimax);
  });

  it('gives back every invoke of a block as a call, each value typed by its schema as vLLM reads it, however the text is split', () => {
    const cases: Array<{ text: string; content: string; calls: Array<{ name: string; arguments: unknown }> }> = [
      { text: `I will write it.\n${block(['write_file', WRITE])}`, content: 'I will write it.', calls: [{ name: 'write_file', arguments: WRITE }] },
      // several invokes in one block are several calls; a string parameter that looks like a number stays text; anyOf tries integer first
      {
        text: block(['no_arguments', {}], ['write_file', { path: '02134', content: 'true', size: '7' }], ['write_file', { size: 'big' }]),
        content: '',
        calls: [
          { name: 'no_arguments', arguments: {} },
          { name: 'write_file', arguments: { path: '02134', content: 'true', size: 7 } },
          { name: 'write_file', arguments: { size: 'big' } },
        ],
      },
      // vLLM's readings: null / None / nil are null (a string's too), booleans from true/1/yes/on, a value that fits none of its types as JSON or text
      { text: block(['write_file', { note: 'None', path: 'nil', force: 'yes', mode: 'seven' }]), content: '', calls: [{ name: 'write_file', arguments: { note: null, path: null, force: true, mode: 'seven' } }] },
      // a function not among the tools, or a parameter its schema does not name: text (JSON where no type is given)
      { text: block(['other', { n: 3, s: 'plain words' }]), content: '', calls: [{ name: 'other', arguments: { n: '3', s: 'plain words' } }] },
      // names quoted with either quote, or bare
      { text: "<minimax:tool_call><invoke name='write_file'><parameter name=mode>7</parameter></invoke></minimax:tool_call>", content: '', calls: [{ name: 'write_file', arguments: { mode: 7 } }] },
      // a block without an invoke is no call: content as written
      { text: 'Nothing: <minimax:tool_call>\n{"name": "x"}\n</minimax:tool_call>', content: 'Nothing: <minimax:tool_call>\n{"name": "x"}\n</minimax:tool_call>', calls: [] },
    ];
    for (const [i, c] of cases.entries()) {
      for (const pieces of splits(c.text, 80 + i)) {
        const got = read(() => new TaggedCallsReader(minimax, TOOLS), pieces);
        expect(got.content, JSON.stringify(pieces)).toBe(c.content);
        expect(got.calls).toEqual(c.calls);
      }
    }
    // a block cut short by the end of the generation: what was written of it
    const cut = read(() => new TaggedCallsReader(minimax, TOOLS), ['<minimax:tool_call>\n<invoke name="write_file">\n<parameter name="path">a.ts</parameter>\n<parameter name="mode">7']);
    expect(cut.calls).toEqual([{ name: 'write_file', arguments: { path: 'a.ts', mode: 7 } }]);
  });

  it('a block the server holds streams each call when its invoke closes, the same calls as the whole block gives', () => {
    const reader = new TaggedCallsReader(minimax, TOOLS, { held: true });
    const steps: Array<[string, ChoiceDelta[]]> = [
      ['Writing.\n<minimax:tool_call>\n<invoke name="write_', [{ kind: 'content', text: 'Writing.' }]],
      ['file">\n<parameter name="mode">644</parameter>\n', []],
      ['</invoke>\n<inv', [{ kind: 'call', index: 0, id: expect.any(String) as string, name: 'write_file', arguments: '{"mode":644}' }]],
      ['oke name="no_arguments">\n</invoke>\n</minimax:tool_call> Done.', [{ kind: 'call', index: 1, id: expect.any(String) as string, name: 'no_arguments', arguments: '{}' }, { kind: 'content', text: ' Done.' }]],
    ];
    for (const [text, deltas] of steps) expect(reader.push(text), text).toEqual(deltas);
    expect(reader.end()).toEqual([]);
    const text = `Sure. ${block(['write_file', WRITE], ['no_arguments', {}])} And ${block(['write_file', { path: 'p' }])}`;
    const whole = argumentTexts(new TaggedCallsReader(minimax, TOOLS), [text]);
    expect(whole.calls.map((c) => c.name)).toEqual(['write_file', 'no_arguments', 'write_file']);
    for (const pieces of splits(text, 9)) expect(argumentTexts(new TaggedCallsReader(minimax, TOOLS, { held: true }), pieces)).toEqual(whole);
    // cut short: the call with what was written of it
    const cut = argumentTexts(new TaggedCallsReader(minimax, TOOLS, { held: true }), ['<minimax:tool_call>\n<invoke name="write_file">\n<parameter name="path">a.ts</parameter>\n<parameter name="content">half a li']);
    expect(cut).toEqual({ content: '', calls: [{ name: 'write_file', arguments: '{"path":"a.ts","content":"half a li"}' }] });
    // a held block that is no call stays content as written
    for (const pieces of splits('Nothing: <minimax:tool_call> plain </minimax:tool_call> done', 3)) {
      expect(argumentTexts(new TaggedCallsReader(minimax, TOOLS, { held: true }), pieces)).toEqual({ content: 'Nothing: <minimax:tool_call> plain </minimax:tool_call> done', calls: [] });
    }
    // parallel_tool_calls false: a block's first call only
    for (const options of [{ held: true, parallel: false }, { parallel: false }]) {
      expect(argumentTexts(new TaggedCallsReader(minimax, TOOLS, options), [block(['no_arguments', {}], ['write_file', { mode: 1 }])]).calls).toEqual([{ name: 'no_arguments', arguments: '{}' }]);
    }
  });

  it('the held pattern: blocks of one call or more, written as the template writes them, match it; other names, types, keys or end tags inside values do not', () => {
    // "auto" holds the blocks the model opens to it (with ten parameters and three end tags the
    // bounded form is too large to follow, so it is the unbounded one)
    const choice = resolveTools({ tools: TOOLS.map((f) => ({ type: 'function' as const, function: f })), tool_choice: 'auto' }, minimax, 'm', undefined);
    const pattern = minimax.heldPattern!(TOOLS, false);
    expect(choice.responseFormat).toMatchObject({ regex: pattern, trigger: '<minimax:tool_call>' });
    const full = new RegExp(`^(?:${pattern})$`, 'u');
    const regex = compileRegex(pattern);
    const held = (text: string) => {
      const state = new RegexPrefix(regex);
      return state.push(text) && state.complete;
    };
    const r = mulberry32(12);
    const pick = <T,>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)];
    const randomArgs = () => {
      const args: Record<string, unknown> = {};
      if (r() < 0.7) args.path = pick(['a.ts', 'dir/b c.txt', 'üñí', '<b>', 'x\ny', '12']);
      if (r() < 0.5) args.mode = pick([0, 644, -3]);
      if (r() < 0.5) args.ratio = pick([0.5, 2, -1.25, 1e-3]);
      if (r() < 0.5) args.force = r() < 0.5;
      if (r() < 0.4) args.level = pick(['low', 'high', 3]);
      if (r() < 0.3) args.tags = ['x', 'y'];
      if (r() < 0.3) args.note = pick([null, 'plain']);
      return args;
    };
    for (let k = 0; k < 150; k++) {
      const calls: Array<[string, Record<string, unknown>]> = Array.from({ length: 1 + Math.floor(r() * 3) }, () => (r() < 0.2 ? ['no_arguments', {}] : ['write_file', randomArgs()]));
      const text = block(...calls);
      const body = text.slice('<minimax:tool_call>'.length);
      expect(full.test(body), body).toBe(true);
      expect(held(body), body).toBe(true);
      expect(read(() => new TaggedCallsReader(minimax, TOOLS), [text]).calls).toEqual(calls.map(([name, args]) => ({ name, arguments: args })));
    }
    for (const bad of [
      block(['other_tool', {}]),
      block(['write_file', { mode: 'seven' }]),
      block(['write_file', { mode: 1.5 }]),
      block(['write_file', { force: 'True' }]),
      block(['write_file', { level: 'middle' }]),
      block(['write_file', { unknown_key: 'x' }]),
      block(['write_file', { path: 'a </minimax:tool_call> b' }]),
      block(['write_file', { path: 'a </invoke> b' }]),
      block(['write_file', { path: 'a </parameter> b' }]),
      '<minimax:tool_call>\n</minimax:tool_call>',
    ]) {
      const body = bad.slice('<minimax:tool_call>'.length);
      expect(full.test(body), body).toBe(false);
      expect(held(body), body).toBe(false);
    }
    // with fewer parameters the bounded form holds: at most as many parameters as the function has
    const small: FunctionTool[] = [{ name: 'ring', parameters: { type: 'object', properties: { times: { type: 'integer' }, note: { type: 'string' } } } }];
    const bounded = compileRegex(minimax.heldPattern!(small));
    const ok = (text: string) => {
      const state = new RegexPrefix(bounded);
      return state.push(text) && state.complete;
    };
    expect(ok(block(['ring', { times: 2, note: 'x' }], ['ring', {}]).slice('<minimax:tool_call>'.length))).toBe(true);
    expect(ok(`\n<invoke name="ring">\n${'<parameter name="times">1</parameter>\n'.repeat(3)}</invoke>\n</minimax:tool_call>`)).toBe(false);
    expect(ok(`\n<invoke name="ring">\n${'<parameter name="times">1</parameter>\n'.repeat(2)}</invoke>\n</minimax:tool_call>`)).toBe(true);
  });
});

describe('reasoning apart from the answer (--reasoning-parser)', () => {
  const parser = REASONING_PARSERS.get('qwen3')!;
  const hermesBlock = `<tool_call>\n${JSON.stringify({ name: 'get_weather', arguments: CALLS[0].arguments })}\n</tool_call>`;

  it('splits the thinking from the answer however the text is split, from each place a completion can start', () => {
    const cases: Array<{ start: ReasoningStart; text: string; reasoning: string; content: string }> = [
      // the prompt opened the block (R1, Qwen3 thinking models)
      { start: 'reasoning', text: 'Let me think: < and </ are not the tag.\n</think>\n\nThe answer.', reasoning: 'Let me think: < and </ are not the tag.\n', content: '\n\nThe answer.' },
      // never closed: all reasoning
      { start: 'reasoning', text: 'Still thinking </thi', reasoning: 'Still thinking </thi', content: '' },
      // the model opens it (Qwen3's hybrid models)
      { start: 'maybe', text: '\n<think>\nhmm\n</think>\n\nYes.', reasoning: '\nhmm\n', content: '\n\nYes.' },
      // or does not: all content, the text that looked like the tag's beginning included
      { start: 'maybe', text: '<thin ice', reasoning: '', content: '<thin ice' },
      { start: 'maybe', text: '  plain answer', reasoning: '', content: '  plain answer' },
      // the prompt closed it (thinking off): a tag in the answer is the answer's
      { start: 'answer', text: 'No <think> here </think>.', reasoning: '', content: 'No <think> here </think>.' },
    ];
    for (const [i, c] of cases.entries()) {
      for (const pieces of splits(c.text, 60 + i)) {
        const got = read(() => new ReasoningReader(parser, c.start, null), pieces);
        expect({ reasoning: got.reasoning, content: got.content }, `${c.start} ${JSON.stringify(pieces)}`).toEqual({ reasoning: c.reasoning, content: c.content });
      }
    }
  });

  it('tool calls are read from the answer only', () => {
    const text = `<think>\nI could write ${hermesBlock} here, but I think.\n</think>\n\nAsking.\n${hermesBlock}`;
    for (const pieces of splits(text, 70)) {
      const got = read(() => new ReasoningReader(parser, 'maybe', new TaggedCallsReader(hermes)), pieces);
      expect(got.reasoning).toBe(`\nI could write ${hermesBlock} here, but I think.\n`);
      expect(got.content).toBe('\n\nAsking.');
      expect(got.calls).toEqual([CALLS[0]]);
    }
  });

  it('where a completion starts, from its prompt', () => {
    expect(reasoningStart('<|im_start|>assistant\n<think>\n', parser)).toBe('reasoning');
    expect(reasoningStart('<|im_start|>assistant\n<think>\n\n</think>\n\n', parser)).toBe('answer');
    expect(reasoningStart('<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n', parser)).toBe('maybe');
    // an earlier turn's closed block does not close this one
    expect(reasoningStart('<think>a</think>b<|im_end|>\n<|im_start|>assistant\n', parser)).toBe('maybe');
    // GLM-4.5's prompts: thinking off closes an empty block; on, the model opens one after earlier turns' empty blocks
    const glm = REASONING_PARSERS.get('glm45')!;
    expect(reasoningStart('[gMASK]<sop><|user|>\nHi<|assistant|>\n<think></think>', glm)).toBe('answer');
    expect(reasoningStart('[gMASK]<sop><|user|>\nHi<|assistant|>\n<think></think>\nHello<|user|>\nAnd?<|assistant|>', glm)).toBe('maybe');
  });
});

describe('forced calls (the JSON the constraint holds them to)', () => {
  it('"required": each call of the array as soon as it closes, whatever the layout and the split', () => {
    const r = mulberry32(5);
    for (let k = 0; k < 30; k++) {
      const calls = Array.from({ length: 1 + Math.floor(r() * 3) }, () => CALLS[Math.floor(r() * CALLS.length)]);
      const text = JSON.stringify(calls, null, [0, 2, 4][k % 3]);
      for (const pieces of splits(text, k).slice(0, 6)) expect(read(() => new JsonCallsReader(true, NAMES), pieces)).toMatchObject({ content: '', calls });
    }
    // the single call (parallel_tool_calls false)
    expect(read(() => new JsonCallsReader(false, NAMES), [...JSON.stringify(CALLS[1], null, 2)])).toMatchObject({ content: '', calls: [CALLS[1]] });
    // cut short at max_tokens: the calls that closed, then what was written of the next as content
    const cut = `[${JSON.stringify(CALLS[0])}, {"name": "send_le`;
    expect(read(() => new JsonCallsReader(true, NAMES), [...cut])).toMatchObject({ content: '{"name": "send_le', calls: [CALLS[0]] });
    // a call opens as soon as its name is written, and its arguments follow as they are written
    const reader = new JsonCallsReader(true, NAMES);
    expect(reader.push('[{"name": "get_weather"')).toMatchObject([{ kind: 'call', index: 0, name: 'get_weather', arguments: '' }]);
    expect(reader.push(', "arguments": {"city": "Ver')).toEqual([{ kind: 'arguments', index: 0, text: '{"city": "Ver' }]);
    expect(reader.push('ona"} }, {"arguments": {"a": 1}, ')).toEqual([{ kind: 'arguments', index: 0, text: 'ona"}' }]);
    // (arguments before the name: they wait for it)
    expect(reader.push('"name": "no_arguments"}]')).toMatchObject([{ kind: 'call', index: 1, name: 'no_arguments', arguments: '{"a": 1}' }]);
    expect(reader.end()).toEqual([]);
    // cut inside the arguments: the call, with what was written of them (the finish reason says "length")
    const cutArgs = new JsonCallsReader(false, NAMES);
    const deltas = [...cutArgs.push('{"name": "send_letter", "arguments": {"to": "Jul'), ...cutArgs.end()];
    expect(deltas).toMatchObject([{ kind: 'call', name: 'send_letter', arguments: '{"to": "Jul' }]);
  });

  it('the streamed arguments are the value as written, whitespace inside it kept and after it not', () => {
    const args = { city: 'Verona', days: [1, 2], note: '  spaced \n "quoted" ' };
    for (const indent of [0, 2]) {
      const text = JSON.stringify({ name: 'get_weather', arguments: args }, null, indent);
      const asWritten = JSON.stringify(args, null, indent).replace(/\n/g, indent ? '\n  ' : '\n');
      for (const pieces of splits(text, indent)) {
        const reader = new JsonCallsReader(false, NAMES);
        let written = '';
        for (const d of [...pieces.flatMap((p) => reader.push(p)), ...reader.end()]) {
          if (d.kind === 'call') written += d.arguments;
          else if (d.kind === 'arguments') written += d.text;
          else throw new Error(`unexpected ${d.kind}`);
        }
        expect(written).toBe(asWritten);
      }
    }
  });

  it('a named function: the text is its arguments, streamed as they come', () => {
    const reader = new NamedCallReader('get_weather');
    expect(reader.push('{"city"')).toMatchObject([{ kind: 'call', index: 0, name: 'get_weather', arguments: '{"city"' }]);
    expect(reader.push(': "Verona"}')).toEqual([{ kind: 'arguments', index: 0, text: ': "Verona"}' }]);
    expect(reader.end()).toEqual([]);
    // nothing generated still names the call
    expect(new NamedCallReader('f').end()).toMatchObject([{ kind: 'call', name: 'f', arguments: '' }]);
  });

  it('the combined schema accepts a call exactly when Ajv accepts its arguments under that tool’s own schema, $defs of the same name kept apart', () => {
    const tools = [
      {
        name: 'order',
        parameters: { type: 'object', properties: { item: { $ref: '#/$defs/Item' }, more: { type: 'array', items: { $ref: '#/$defs/Item' } } }, required: ['item'], additionalProperties: false, $defs: { Item: { type: 'string', enum: ['bread', 'wine'] } } },
      },
      {
        name: 'count',
        parameters: { type: 'object', properties: { n: { $ref: '#/definitions/Item' }, tag: { $ref: '#/$defs/a~1b' } }, required: ['n'], additionalProperties: false, definitions: { Item: { type: 'integer' } }, $defs: { 'a/b': { enum: [true] } } },
      },
      { name: 'anything' },
    ];
    const own = tools.map((t) => new Ajv({ strict: false }).compile(t.parameters ?? { type: 'object' }));
    const values: unknown[] = [{ item: 'bread' }, { item: 'wine', more: ['bread'] }, { item: 3 }, { n: 3 }, { n: 'bread' }, { n: 1, tag: true }, { n: 1, tag: false }, {}, { other: [1, 2] }, { item: 'bread', n: 1 }];
    for (const parallel of [false, true]) {
      const { schema, topLevel } = callsSchema(tools, parallel);
      const root = compileSchema(schema, topLevel);
      const combined = new Ajv({ strict: false }).compile(schema);
      for (const [i, tool] of tools.entries()) {
        for (const value of values) {
          const call = { name: tool.name, arguments: value };
          const instance = parallel ? [call] : call;
          const expected = own[i](value);
          expect(combined(instance), `${tool.name} ${JSON.stringify(value)}`).toBe(expected);
          const prefix = new SchemaPrefix(root);
          expect(prefix.push(JSON.stringify(instance)) && prefix.complete).toBe(expected);
        }
      }
      // an unknown name is never a call
      const prefix = new SchemaPrefix(root);
      expect(prefix.push(`${parallel ? '[' : ''}{"name": "other"`)).toBe(false);
    }
  });
});
