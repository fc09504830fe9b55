/**
 * npm run bench:json-body [-- --json] [-- --rounds 3]
 *
 * What a request body costs the server's event loop, which every stream's decoding shares: the
 * server's body parser (src/serve/json-body.ts: the structure check, JSON.parse, the "__proto__"
 * walk where the text can hold the key) against JSON.parse alone on the same text, in the same
 * round, on bodies of up to the 16 MiB body limit: a batch of token ids (with and without a
 * \u escape or "__proto__" in it), one long string, and the hostile shapes the structure check
 * refuses (millions of empty objects, object keys, short strings or nested brackets). Per body:
 * the median time of each over the rounds, what the parser answered, and the JS heap the parsed
 * body holds (heap in use after a collection with the result still referenced, less that before
 * the call).
 */
import { parseArgs } from 'node:util';
import v8 from 'node:v8';
import vm from 'node:vm';
import { parseJsonBody } from '../src/serve/json-body.js';

const { values } = parseArgs({ options: { json: { type: 'boolean', default: false }, rounds: { type: 'string', default: '3' } } });
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) throw new Error(`--rounds must be a positive integer; got "${values.rounds}"`);

const LIMIT = 16 * 1024 * 1024;
const ids: string[] = [];
for (let len = 40; len < LIMIT - 100; ) {
  const s = String(ids.length % 100_000);
  ids.push(s);
  len += s.length + 1;
}
/** item(0), item(1), … joined by commas, as many as fit in `chars`. */
function countedUpTo(chars: number, item: (i: number) => string): string {
  const items: string[] = [];
  for (let len = 0; ; ) {
    const next = item(items.length);
    if (len + next.length + 1 > chars) break;
    items.push(next);
    len += next.length + 1;
  }
  return items.join(',');
}
const idBody = `{"model":"m","prompt":[${ids.join(',')}]}`;
const bodies: Array<[string, string]> = [
  [`${(ids.length / 1e6).toFixed(1)} M token ids`, idBody],
  ['the same with a \\u00e9 escape', idBody.replace('"m"', '"\\u00e9"')],
  ['the same with "__proto__" in a string', idBody.replace('"m"', '"__proto__"')],
  ['one string of 16 MiB', `{"model":"m","prompt":"${'x'.repeat(LIMIT - 40)}"}`],
  ['5.6 M empty objects', `[${new Array(Math.floor(LIMIT / 3)).fill('{}').join(',')}]`],
  ['an object of 1.4 M keys', `{"model":"m","logit_bias":{${countedUpTo(LIMIT - 40, (i) => `"k${i}":1`)}}}`],
  ['1.6 M short strings', `{"model":"m","stop":[${countedUpTo(LIMIT - 40, (i) => `"s${i}"`)}]}`],
  ['8 M nested brackets', `{"b":${'['.repeat(LIMIT / 2 - 10)}${']'.repeat(LIMIT / 2 - 10)}}`],
];

// flat strings, as a request body arrives (built by concatenation they would be flattened, and
// their flat copy counted, by whichever call reads them first)
for (const body of bodies) body[1] = Buffer.from(body[1], 'latin1').toString('latin1');

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

/** Milliseconds `run` took, what it answered, and the heap in MB its result holds. */
function measure(run: () => unknown): { ms: number; outcome: string; heapMb: number } {
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = performance.now();
  let outcome = 'parsed';
  let result: unknown;
  try {
    result = run();
  } catch (err) {
    outcome = `400 ${(err as { code?: string }).code ?? (err as Error).message}`;
  }
  const ms = performance.now() - t0;
  gc();
  const heapMb = (process.memoryUsage().heapUsed - heap0) / 1e6;
  // the result must still be referenced at the collection above
  if (result === heap0) throw new Error('unreachable');
  return { ms, outcome, heapMb };
}

// compile both before the first measured body
for (let r = 0; r < 3; r++) {
  const small = `{"model":"m","prompt":[${ids.slice(0, 100_000).join(',')}],"x":"\\u00e9"}`;
  parseJsonBody(small);
  JSON.parse(small);
}

interface Row { body: string; mib: number; parserMs: number; jsonParseMs: number; parser: string; parserHeapMb: number; jsonParseHeapMb: number }
const rows: Row[] = [];
for (const [label, text] of bodies) {
  const parser: ReturnType<typeof measure>[] = [];
  const plain: ReturnType<typeof measure>[] = [];
  for (let r = 0; r < rounds; r++) {
    parser.push(measure(() => parseJsonBody(text)));
    plain.push(measure(() => JSON.parse(text)));
  }
  rows.push({
    body: label, mib: text.length / 1048576, parserMs: median(parser.map((m) => m.ms)), jsonParseMs: median(plain.map((m) => m.ms)),
    parser: parser[0].outcome, parserHeapMb: Math.max(...parser.map((m) => m.heapMb)), jsonParseHeapMb: Math.max(...plain.map((m) => m.heapMb)),
  });
  process.stderr.write(`${label} done\n`);
}
if (values.json) {
  console.log(JSON.stringify({ rounds, rows }));
} else {
  console.log(`Node ${process.version}, median of ${rounds} round(s)\n`);
  console.log('| body | MiB | the server\'s parser | JSON.parse alone | heap the result holds, parser / JSON.parse |');
  console.log('|---|---:|---|---:|---:|');
  for (const r of rows) console.log(`| ${r.body} | ${r.mib.toFixed(1)} | ${r.parserMs.toFixed(0)} ms, ${r.parser} | ${r.jsonParseMs.toFixed(0)} ms | ${r.parserHeapMb.toFixed(0)} / ${r.jsonParseHeapMb.toFixed(0)} MB |`);
}
