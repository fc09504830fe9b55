/**
 * Benchmark: a model's load with its tensors in huge pages (native/huge_pages.cc) against Node's
 * own buffers, and against the checkpoint files mapped into memory (native/file_map.cc), as a
 * cold start does it: each load in a fresh process, every tensor read as the runtime holds it with
 * BF16 weights and kept until the last is read (so no buffer is reused, as none is when a model
 * first loads), from the page cache (one untimed read first warms it), or with --cold from the
 * disk (each file's cached pages dropped before each load: `dd iflag=nocache`, no root needed).
 *
 *   npx tsx bench/load-pages.ts --model DIR [--rounds 5] [--cold] [--json]
 *
 * Per round, in turn: the native engine with huge pages (RFID_MOE_HUGE_PAGES=1), with small pages
 * (=0), with the default for this machine (small pages on a VM that reports its free pages to the
 * host, io/tensor-buffers.ts), the native engine with the files mapped and every page brought in
 * (Checkpoint.mapReads and its files' populate, as a served model loads by default), and the ts engine
 * (no addon: Node's buffers). Reports each one's median load time and its ratio to the huge-page
 * load.
 *
 * Why this bench: bench:fp8-load reads each tensor and drops it, in one process, so from its
 * second read on Node's freed buffers are reused without page faults while each huge-page buffer
 * is a fresh mapping. That made BF16 reads look slower with the addon loaded; a real load keeps
 * every tensor, in memory not yet touched.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openCheckpoint } from '../src/checkpoint/open.js';
import { createEngine } from '../src/engine/index.js';
import { reportsFreePages } from '../src/io/tensor-buffers.js';
import { dropCachedPages } from './lib/page-cache.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');

interface Args {
  model: string;
  rounds: number;
  json: boolean;
  cold: boolean;
  child: 'native' | 'ts' | null;
  mapped: boolean;
}

function parseArgs(argv: string[]): Args {
  const args: Partial<Args> = { rounds: 5, json: false, cold: false, child: null, mapped: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--model') args.model = argv[++i];
    else if (a === '--rounds') {
      const v = Number(argv[++i]);
      if (!Number.isInteger(v) || v < 1) throw new Error('--rounds needs a positive integer');
      args.rounds = v;
    } else if (a === '--json') args.json = true;
    else if (a === '--cold') args.cold = true;
    else if (a === '--mapped') args.mapped = true;
    else if (a === '--child') {
      const e = argv[++i];
      if (e !== 'native' && e !== 'ts') throw new Error('--child takes native or ts');
      args.child = e;
    } else throw new Error(`unknown argument ${a} (usage: --model DIR [--rounds N] [--cold] [--json])`);
  }
  if (!args.model) throw new Error('--model DIR is required (a checkpoint directory)');
  return args as Args;
}

/** One load in this process: seconds from open to the last tensor read, every tensor kept (and, mapped, every page in memory). */
async function childLoad(dir: string, engineKind: 'native' | 'ts', mapped: boolean): Promise<void> {
  const { engine } = await createEngine(engineKind, { threads: 1 });
  const t0 = performance.now();
  const ckpt = await openCheckpoint(dir);
  const kept: Array<Uint16Array | Float32Array> = [];
  let bytes = 0;
  try {
    if (mapped) {
      const files = ckpt.mapReads?.();
      if (!files) throw new Error('the checkpoint could not be mapped (is the native addon built? RFID_MOE_MMAP=0?)');
      await files.populate();
    }
    for (const name of ckpt.tensorNames()) {
      const bits = ckpt.tensor(name)!.dtype === 'BF16' ? await ckpt.readBf16!(name) : null;
      const t = bits ?? (await ckpt.readF32(name));
      kept.push(t);
      bytes += t.byteLength;
    }
    const seconds = (performance.now() - t0) / 1000;
    process.stdout.write(JSON.stringify({ seconds, bytes, tensors: kept.length }) + '\n');
  } finally {
    await ckpt.close();
    engine.dispose();
  }
}

interface Config {
  label: string;
  engine: 'native' | 'ts';
  /** RFID_MOE_HUGE_PAGES for the load (undefined: unset, the default) */
  hugePages: '1' | '0' | undefined;
  /** the files mapped, their pages brought in, the tensors views of them */
  mapped?: boolean;
}

const CONFIGS: Config[] = [
  { label: 'native engine, RFID_MOE_HUGE_PAGES=1 (huge pages)', engine: 'native', hugePages: '1' },
  { label: 'native engine, RFID_MOE_HUGE_PAGES=0 (small pages)', engine: 'native', hugePages: '0' },
  { label: `native engine, default (on this machine: ${reportsFreePages() ? 'small pages, it reports free pages to its host' : 'huge pages'})`, engine: 'native', hugePages: undefined },
  { label: 'ts engine (no addon: small pages)', engine: 'ts', hugePages: undefined },
  { label: 'native engine, files mapped (a served model\'s default)', engine: 'native', hugePages: undefined, mapped: true },
];

function spawnLoad(dir: string, c: Config): { seconds: number; bytes: number } {
  const env = { ...process.env };
  if (c.hugePages === undefined) delete env.RFID_MOE_HUGE_PAGES;
  else env.RFID_MOE_HUGE_PAGES = c.hugePages;
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), '--child', c.engine, '--model', dir, ...(c.mapped ? ['--mapped'] : [])], { cwd: ROOT, env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`a load (${c.label}) failed: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { seconds: number; bytes: number };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  if (args.child) return childLoad(args.model, args.child, args.mapped);
  if (!args.cold) spawnLoad(args.model, CONFIGS[3]); // warm the page cache (untimed)
  const times = CONFIGS.map(() => [] as number[]);
  let bytes = 0;
  for (let r = 0; r < args.rounds; r++) {
    // the order turns each round, so none always follows the same one
    for (let k = 0; k < CONFIGS.length; k++) {
      const i = (k + r) % CONFIGS.length;
      if (args.cold) dropCachedPages(args.model); // from the disk
      const got = spawnLoad(args.model, CONFIGS[i]);
      times[i].push(got.seconds);
      bytes = got.bytes;
      process.stderr.write(`round ${r + 1}/${args.rounds}: ${CONFIGS[i].label} ${got.seconds.toFixed(2)} s\n`);
    }
  }
  const base = median(times[0]);
  const rows = CONFIGS.map((c, i) => ({ config: c.label, medianSeconds: median(times[i]), seconds: times[i], vsHugePages: median(times[i]) / base }));
  if (args.json) {
    process.stdout.write(JSON.stringify({ model: args.model, heldBytes: bytes, rounds: args.rounds, cold: args.cold, rows }, null, 2) + '\n');
    return;
  }
  process.stdout.write(`Held: ${(bytes / 1e9).toFixed(2)} GB, each load in a fresh process ${args.cold ? 'from the disk (cached pages dropped first)' : 'from the page cache'}, median of ${args.rounds}\n\n`);
  process.stdout.write('| load | median | rounds | ÷ huge pages |\n|---|---:|---|---:|\n');
  for (const row of rows) process.stdout.write(`| ${row.config} | ${row.medianSeconds.toFixed(2)} s | ${row.seconds.map((s) => s.toFixed(2)).join(', ')} | ${row.vsHugePages.toFixed(2)}× |\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
