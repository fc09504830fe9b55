/**
 * npm run bench:long-prompt [-- --mb 4] [-- --rounds 3] [-- --model DIR]
 *
 * What one long prompt does to the other requests of a server: `rfid-moe serve` runs in a child
 * process, one client sends a prompt of --mb megabytes of text (far beyond the context, so it is
 * tokenised and refused), and another sends short greedy completions one after another until the
 * long one is answered. Reported per setting: the short requests' median and longest latency and
 * how many were answered meanwhile. Two settings alternate per round on the same machine: long
 * prompts tokenised by the server's worker thread (as served), and tokenised in place on the event
 * loop (RFID_MOE_INLINE_TOKENIZE_CHARS set past the prompt), as before the worker existed.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { parseArgs } from 'node:util';

const root = path.join(import.meta.dirname, '..');
const { values } = parseArgs({
  options: {
    mb: { type: 'string', default: '4' },
    rounds: { type: 'string', default: '3' },
    model: { type: 'string', default: path.join(root, 'examples', 'models', 'mixtral-tiny-shakespeare') },
  },
});
const mb = Number(values.mb);
const rounds = Number(values.rounds);
if (!(mb > 0) || !Number.isInteger(rounds) || rounds < 1) throw new Error('--mb must be a positive number and --rounds a positive integer');

async function run(inline: boolean): Promise<{ longMs: number; status: number; shortRequests: number; medianMs: number; maxMs: number }> {
  const env = { ...process.env, ...(inline ? { RFID_MOE_INLINE_TOKENIZE_CHARS: String(Number.MAX_SAFE_INTEGER) } : {}) };
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'src', 'cli', 'main.ts'), 'serve', `m=${values.model}`, '--port', '0', '--quiet'], { env, stdio: ['ignore', 'ignore', 'pipe'] });
  try {
    let err = '';
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        const m = / at (http:\/\/[^ ]+) /.exec(err);
        if (m) resolve(m[1]);
      });
      child.once('exit', (code) => reject(new Error(`the server exited with ${code}: ${err}`)));
    });
    const post = (body: object) => fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
    // warm: the model is loaded by the first request
    await (await post({ model: 'm', prompt: 'ROMEO:', max_tokens: 4, temperature: 0 })).text();
    const text = 'ROMEO: what light through yonder window breaks? '.repeat(Math.floor((mb * 1e6) / 48));
    const t0 = performance.now();
    let done = false;
    const long = post({ model: 'm', prompt: text, max_tokens: 1 }).then(async (r) => {
      await r.text();
      done = true;
      return { status: r.status, ms: performance.now() - t0 };
    });
    const lat: number[] = [];
    while (!done) {
      const t = performance.now();
      await (await post({ model: 'm', prompt: 'ROMEO:', max_tokens: 4, temperature: 0 })).text();
      lat.push(performance.now() - t);
    }
    const l = await long;
    lat.sort((a, b) => a - b);
    return { longMs: l.ms, status: l.status, shortRequests: lat.length, medianMs: lat[lat.length >> 1], maxMs: lat[lat.length - 1] };
  } finally {
    child.kill('SIGTERM');
  }
}

const rows: Array<{ round: number; setting: string } & Awaited<ReturnType<typeof run>>> = [];
for (let round = 1; round <= rounds; round++) {
  for (const inline of round % 2 ? [false, true] : [true, false]) {
    const r = await run(inline);
    rows.push({ round, setting: inline ? 'in place' : 'worker thread', ...r });
    process.stderr.write(`round ${round}, ${inline ? 'in place' : 'worker thread'}: long prompt ${r.status} after ${r.longMs.toFixed(0)} ms; ${r.shortRequests} short requests, median ${r.medianMs.toFixed(0)} ms, longest ${r.maxMs.toFixed(0)} ms\n`);
  }
}
console.log(JSON.stringify({ mb, rows }, null, 2));
