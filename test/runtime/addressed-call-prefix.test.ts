/**
 * AddressedCallPrefix: one function call addressed in a message header (gpt-oss's
 * `to=functions.NAME … <|message|>{…}`), read from the text after the address. Truth: the forms
 * OpenAI's harmony format and gpt-oss's chat template write (the name, the rest of the header, the
 * arguments), and JSON Schema's own rules for the arguments; every prefix of an accepted text is
 * accepted too, and states with one key accept the same continuations.
 */
import { describe, expect, it } from 'vitest';
import { AddressedCallPrefix, type AddressedCalls } from '../../src/runtime/generation/addressed-call-prefix.js';
import { SchemaError } from '../../src/runtime/generation/json-schema.js';

const CITY = { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false };
const spec = (names: Record<string, unknown>, maxHeader?: number): AddressedCalls => ({
  trigger: 'to=functions.',
  functions: Object.entries(names).map(([name, schema]) => ({ name, schema })),
  bodyOpens: '<|message|>',
  refuses: ['<|start|>', '<|end|>', '<|return|>', '<|call|>'],
  ...(maxHeader === undefined ? {} : { maxHeader }),
});
const WEATHER = spec({ get_weather: CITY, get_time: { type: 'object', properties: {} } });

/** whether `text` is read whole, every prefix too; the state after it */
function read(s: AddressedCalls, text: string): AddressedCallPrefix | null {
  const state = new AddressedCallPrefix(s);
  for (const c of text) if (!state.push(c)) return null;
  // the same text in one push
  const once = new AddressedCallPrefix(s);
  expect(once.push(text)).toBe(true);
  expect(once.key).toBe(state.key);
  return state;
}

describe('AddressedCallPrefix', () => {
  it('reads the forms gpt-oss writes: the name, the rest of the header, the arguments under its schema', () => {
    // as the model writes a call (harmony's own example's form)
    const own = read(WEATHER, 'get_weather <|constrain|>json<|message|>{"city": "Paris"}')!;
    expect(own.complete).toBe(true);
    expect(own.named).toBe('get_weather');
    // as gpt-oss's chat template writes one back (the address before the channel)
    const templated = read(WEATHER, 'get_time<|channel|>commentary json<|message|>{}')!;
    expect(templated.complete).toBe(true);
    expect(templated.named).toBe('get_time');
    // a prefix is viable, not complete
    const partial = read(WEATHER, 'get_weather <|constrain|>json<|message|>{"ci')!;
    expect(partial.complete).toBe(false);
    expect(partial.named).toBe('get_weather');
    expect(read(WEATHER, 'get_w')!.named).toBeNull();
  });

  it('refuses a function not offered, a name cut short, and a header that begins on a name', () => {
    expect(read(WEATHER, 'lookup')).toBeNull();
    expect(read(WEATHER, 'get_weath <|message|>')).toBeNull();
    expect(read(WEATHER, 'get_timex<|message|>')).toBeNull();
  });

  it('a name another name begins is told apart by what follows it', () => {
    const s = spec({ get: { type: 'object' }, get_weather: CITY });
    expect(read(s, 'get <|message|>{}')!.named).toBe('get');
    expect(read(s, 'get_weather<|message|>{"city":"Rome"}')!.named).toBe('get_weather');
    expect(read(s, 'get_weather <|message|>{}')).toBeNull(); // get_weather's schema requires city
    expect(read(s, 'get <|message|>{"anything": 1}')!.complete).toBe(true);
  });

  it('the header may not end the message, start another, or run past its bound', () => {
    expect(read(WEATHER, 'get_weather <|end|>')).toBeNull();
    expect(read(WEATHER, 'get_weather<|call|>')).toBeNull();
    expect(read(WEATHER, 'get_weather <|start|>assistant<|message|>')).toBeNull();
    const bounded = spec({ get_weather: CITY }, 20);
    // 20 characters after the name, the opening's 11 among them
    expect(read(bounded, `get_weather ${'x'.repeat(8)}<|message|>{"city":"Oslo"}`)!.complete).toBe(true);
    expect(read(bounded, `get_weather ${'x'.repeat(9)}<|message|>`)).toBeNull();
    // the bound is kept while the text could still close: a header whose opening cannot fit any more is refused at once
    expect(read(bounded, `get_weather ${'x'.repeat(9)}`)).toBeNull();
    expect(read(bounded, `get_weather ${'x'.repeat(8)}<|mes`)).not.toBeNull();
  });

  it('the arguments are one object valid under the schema, and nothing follows it', () => {
    expect(read(WEATHER, 'get_weather <|message|>{"city": 7}')).toBeNull();
    expect(read(WEATHER, 'get_weather <|message|>{"town": "Paris"}')).toBeNull();
    expect(read(WEATHER, 'get_weather <|message|>["Paris"]')).toBeNull();
    expect(read(WEATHER, 'get_weather <|message|>{"city": "Paris"}<|call|>')).toBeNull();
  });

  it('inString only inside the arguments\' strings (where a marker token may not go)', () => {
    expect(read(WEATHER, 'get_weather <|constr')!.inString).toBe(false);
    expect(read(WEATHER, 'get_weather <|message|>{"city": "Pa')!.inString).toBe(true);
    expect(read(WEATHER, 'get_weather <|message|>{"city": "Paris"')!.inString).toBe(false);
  });

  it('clones and copies carry the state; equal keys accept the same continuations', () => {
    const a = read(WEATHER, 'get_weather 1234zzz<|const')!;
    const b = a.clone();
    expect(b.key).toBe(a.key);
    expect(b.push('rain|>json<|message|>{"city":"Lima"}')).toBe(true);
    expect(b.complete).toBe(true);
    expect(a.complete).toBe(false);
    // another path to the same key (same length, same end) accepts what this one does
    const c = read(WEATHER, 'get_weather abcdzzz<|const')!;
    expect(c.key).toBe(a.key);
    for (const more of ['rain|>json<|message|>{"city":"Lima"}', '<|end|>', 'x<|message|>{}']) {
      expect(a.clone().push(more)).toBe(c.clone().push(more));
    }
    const d = new AddressedCallPrefix(WEATHER).copyFrom(a);
    expect(d.key).toBe(a.key);
  });

  it('a spec without functions, with a name twice, or with an empty opening is a SchemaError', () => {
    expect(() => new AddressedCallPrefix(spec({}))).toThrow(SchemaError);
    expect(() => new AddressedCallPrefix({ ...WEATHER, functions: [...WEATHER.functions, WEATHER.functions[0]] })).toThrow(/twice/);
    expect(() => new AddressedCallPrefix({ ...WEATHER, bodyOpens: '' })).toThrow(SchemaError);
    expect(() => new AddressedCallPrefix(spec({ get_weather: { type: 'object', properties: { x: { type: 'strange' } } } }))).toThrow(SchemaError);
  });
});
