/**
 * Nothing silently wrong:
 * - every output file's sha256 is recorded; a flipped byte or a missing shard is refused by
 *   loadCompressed and by `compress --resume` on the complete directory;
 * - --resume notices different weights with the same shapes (per-layer source hashes), another
 *   engine setting, and edited statistics — before writing anything;
 * - a lock file refuses a second live run on the same directory; a dead run's lock is taken over;
 * - NaN/Inf in weights (compress), factors, and perplexity are refused, naming layer and tensor.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { Checkpoint } from '../../src/checkpoint/types.js';
import { assertFactorsFinite } from '../../src/compress/integrity.js';
import { lockOutputDir } from '../../src/compress/lock.js';
import { compress } from '../../src/compress/pipeline.js';
import type { CompressProgress } from '../../src/compress/progress.js';
import { loadCompressed } from '../../src/compressed/load.js';
import { openModel } from '../../src/compressed/open-model.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import type { Engine } from '../../src/engine/types.js';
import { evaluateWindows } from '../../src/eval/evaluate.js';
import { loadRoutingStats, writeRoutingStats } from '../../src/routing-stats/schema.js';
import { rewriteModelFile } from '../checkpoint/rewrite.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { syntheticStats, tempDir } from './helpers.js';

let engine: Engine;
let root: Awaited<ReturnType<typeof tempDir>>;
let modelA: Checkpoint;
let modelB: Checkpoint;
let statsFile: string;

const RECIPE = { retain: 0.5 };
const SHARD0 = 'model-00001-of-00003.safetensors';
const SHARD1 = 'model-00002-of-00003.safetensors';

class Interrupt extends Error {}

/** Throws out of the pipeline once layer `after` is finished: an interrupted run, in-process. */
const stopAfterLayer = (after: number) => (e: CompressProgress) => {
  if (e.type === 'layer-done' && e.layer === after) throw new Interrupt('stopped');
};

const run = (model: Checkpoint, out: string, extra: Record<string, unknown> = {}) =>
  compress(model, RECIPE, { out: path.join(root.dir, out), stats: statsFile, engine, evaluation: false, ...extra });

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

async function flipByte(file: string, at = -10): Promise<void> {
  const bytes = await readFile(file);
  const i = at < 0 ? bytes.length + at : at;
  bytes[i] ^= 0x01;
  await writeFile(file, bytes);
}

beforeAll(async () => {
  engine = createTsEngine({ threads: 1 });
  root = await tempDir('integrity');
  // same family, config and shapes; different weights (seed): identical model fingerprints
  await makeTinyCheckpoint(path.join(root.dir, 'a'), 'qwen3_moe', { seed: 3 });
  await makeTinyCheckpoint(path.join(root.dir, 'b'), 'qwen3_moe', { seed: 4 });
  modelA = await openCheckpoint(path.join(root.dir, 'a'));
  modelB = await openCheckpoint(path.join(root.dir, 'b'));
  statsFile = path.join(root.dir, 'stats.json');
  await writeRoutingStats(statsFile, syntheticStats(modelA));
});

afterAll(async () => {
  await modelA?.close();
  await modelB?.close();
  engine.dispose();
  await root.cleanup();
});

describe('sha256 of every output file', () => {
  it('is recorded in the rfid_moe block and matches the files', async () => {
    await run(modelA, 'h1');
    const dir = path.join(root.dir, 'h1');
    const config = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8'));
    const files = config.rfid_moe.files as Record<string, string>;
    expect(Object.keys(files)).toEqual(expect.arrayContaining([SHARD0, SHARD1, 'model-00003-of-00003.safetensors', 'model.safetensors.index.json', 'rfid-moe-routing-stats.json']));
    for (const [name, hash] of Object.entries(files)) expect(sha(await readFile(path.join(dir, name))), name).toBe(hash);
    expect(config.rfid_moe.sourceSha256.layers).toHaveLength(2);
  });

  it('chat templates are carried and hashed: chat_template.jinja and additional_chat_templates/<name>.jinja', async () => {
    // transformers 5 saves a tokenizer's chat template in these files, not in tokenizer_config.json
    const model = path.join(root.dir, 'with-templates');
    await makeTinyCheckpoint(model, 'qwen3_moe', { seed: 3 });
    await writeFile(path.join(model, 'chat_template.jinja'), '{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}');
    await mkdir(path.join(model, 'additional_chat_templates', 'nested.jinja'), { recursive: true });
    await writeFile(path.join(model, 'additional_chat_templates', 'tool_use.jinja'), '{{ tools | tojson }}');
    await writeFile(path.join(model, 'additional_chat_templates', 'notes.txt'), 'not a template');
    const ckpt = await openCheckpoint(model);
    try {
      await run(ckpt, 'templates');
    } finally {
      await ckpt.close();
    }
    const dir = path.join(root.dir, 'templates');
    for (const name of ['chat_template.jinja', 'additional_chat_templates/tool_use.jinja']) {
      expect(await readFile(path.join(dir, name), 'utf8'), name).toBe(await readFile(path.join(model, name), 'utf8'));
    }
    expect((await readdir(path.join(dir, 'additional_chat_templates'))).sort()).toEqual(['tool_use.jinja']);
    const files = JSON.parse(await readFile(path.join(dir, 'config.json'), 'utf8')).rfid_moe.files as Record<string, string>;
    expect(files['chat_template.jinja']).toBe(sha(await readFile(path.join(model, 'chat_template.jinja'))));
    expect(files['additional_chat_templates/tool_use.jinja']).toBe(sha(await readFile(path.join(model, 'additional_chat_templates', 'tool_use.jinja'))));
    (await loadCompressed(dir)).close();
    await flipByte(path.join(dir, 'additional_chat_templates', 'tool_use.jinja'), 0);
    await expect(loadCompressed(dir)).rejects.toThrow(/additional_chat_templates\/tool_use\.jinja does not have the sha256 recorded/);
  });

  it('a flipped byte is refused by loadCompressed and by compress --resume on the complete directory', async () => {
    await run(modelA, 'h2');
    const dir = path.join(root.dir, 'h2');
    (await loadCompressed(dir)).close();
    await flipByte(path.join(dir, SHARD1));
    await expect(loadCompressed(dir)).rejects.toThrow(new RegExp(`${SHARD1} does not have the sha256 recorded in config.json.*recompress`));
    await expect(run(modelA, 'h2', { resume: true })).rejects.toThrow(/does not have the sha256 recorded/);
    // what `rfid-moe eval` opens it with
    await expect(openModel(dir)).rejects.toThrow(/does not have the sha256 recorded/);
    // the escape hatch for a directory the caller has just verified
    const unchecked = await loadCompressed(dir, { verifyHashes: false });
    await unchecked.close();
  });

  it('a missing shard is refused, naming it', async () => {
    await run(modelA, 'h3');
    const dir = path.join(root.dir, 'h3');
    await rm(path.join(dir, SHARD0));
    await expect(loadCompressed(dir)).rejects.toThrow(new RegExp(`missing file ${SHARD0}`));
    await expect(run(modelA, 'h3', { resume: true })).rejects.toThrow(new RegExp(`missing file ${SHARD0}`));
  });
});

describe('--resume notices what changed', () => {
  it('resuming with another model of the same shapes is refused before anything is written', async () => {
    const out = path.join(root.dir, 'r1');
    await expect(run(modelA, 'r1', { onProgress: stopAfterLayer(0) })).rejects.toThrow(Interrupt);
    const before = await readFile(path.join(out, SHARD0));
    const listing = (await readdir(out)).sort();
    await expect(run(modelB, 'r1', { resume: true })).rejects.toThrow(/source weights of layer 0 are not those.*mix two models/);
    expect((await readdir(out)).sort()).toEqual(listing);
    expect(Buffer.compare(before, await readFile(path.join(out, SHARD0)))).toBe(0);
    // with the original weights it finishes, byte-identical to an uninterrupted run
    await run(modelA, 'r1', { resume: true });
    await run(modelA, 'r1-ref');
    for (const name of [SHARD0, SHARD1, 'config.json']) {
      expect(Buffer.compare(await readFile(path.join(out, name)), await readFile(path.join(root.dir, 'r1-ref', name))), name).toBe(0);
    }
  });

  it('a complete directory of another model with the same shapes is not "nothing to do"', async () => {
    await run(modelA, 'r2');
    await expect(run(modelB, 'r2', { resume: true })).rejects.toThrow(/source weights of layer 0 are not those/);
  });

  it('another engine setting is another run', async () => {
    await expect(run(modelA, 'r3', { onProgress: stopAfterLayer(0) })).rejects.toThrow(Interrupt);
    const two = createTsEngine({ threads: 2 });
    try {
      await expect(run(modelA, 'r3', { resume: true, engine: two })).rejects.toThrow(/unfinished run with another fingerprint/);
    } finally {
      two.dispose();
    }
  });

  it('edited statistics in the output directory are refused', async () => {
    const out = path.join(root.dir, 'r4');
    await expect(run(modelA, 'r4', { onProgress: stopAfterLayer(0) })).rejects.toThrow(Interrupt);
    const saved = await loadRoutingStats(path.join(out, 'rfid-moe-routing-stats.json'));
    saved.layers[1].counts[0] += 1;
    saved.layers[1].counts[1] -= 1;
    await writeRoutingStats(path.join(out, 'rfid-moe-routing-stats.json'), saved);
    await expect(run(modelA, 'r4', { resume: true })).rejects.toThrow(/routing statistics.*differ from those the finished layers were compressed with/);
  });
});

describe('lock file on --out', () => {
  it('a live run holding the directory refuses a second one, naming its pid', async () => {
    const out = path.join(root.dir, 'l1');
    await expect(run(modelA, 'l1', { onProgress: stopAfterLayer(0) })).rejects.toThrow(Interrupt);
    expect(existsSync(path.join(out, '.rfid-moe.lock'))).toBe(false); // released on error too
    const sleeper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
    try {
      await writeFile(path.join(out, '.rfid-moe.lock'), JSON.stringify({ pid: sleeper.pid, hostname: os.hostname(), started: 'now' }));
      await expect(run(modelA, 'l1', { resume: true })).rejects.toThrow(new RegExp(`in use by another rfid-moe run \\(pid ${sleeper.pid}`));
    } finally {
      sleeper.kill('SIGKILL');
      await new Promise((r) => sleeper.once('exit', r));
    }
    // the same lock, now of a dead process: taken over with a notice
    const warnings: string[] = [];
    await run(modelA, 'l1', { resume: true, onProgress: (e: CompressProgress) => e.type === 'warning' && warnings.push(e.message) });
    expect(warnings.join('\n')).toMatch(new RegExp(`taking over the lock.*pid ${sleeper.pid}`));
    expect(existsSync(path.join(out, '.rfid-moe.lock'))).toBe(false);
    expect(existsSync(path.join(out, 'config.json'))).toBe(true);
  });
});

describe('lock file: two runs at once', () => {
  it('a second run on a directory this process is writing is refused', async () => {
    const out = path.join(root.dir, 'l2');
    await mkdir(out);
    const lock = await lockOutputDir(out);
    try {
      await expect(run(modelA, 'l2')).rejects.toThrow(/already being written by this process/);
    } finally {
      await lock.release();
    }
    await run(modelA, 'l2');
  });
});

describe('non-finite values are errors', () => {
  it('a NaN expert weight is refused, naming the layer and tensor; no shard of that layer is written', async () => {
    const dir = path.join(root.dir, 'nan-model');
    await makeTinyCheckpoint(dir, 'qwen3_moe', { seed: 3 });
    const victim = 'model.layers.1.mlp.experts.2.up_proj.weight';
    await rewriteModelFile(dir, (ts) => ts.map((t) => {
      if (t.name !== victim) return t;
      const data = new Uint8Array(t.data);
      new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4)[5] = Number.NaN;
      return { ...t, data };
    }));
    const ckpt = await openCheckpoint(dir);
    try {
      const out = path.join(root.dir, 'nan-out');
      await expect(compress(ckpt, RECIPE, { out, stats: statsFile, engine, evaluation: false })).rejects.toThrow(new RegExp(`layer 1, tensor ${victim.replace(/\./g, '\\.')}: holds NaN`));
      expect(existsSync(path.join(out, SHARD1))).toBe(false);
      expect(existsSync(path.join(out, 'config.json'))).toBe(false);
      // an Inf in a non-expert tensor is refused too
      await rewriteModelFile(dir, (ts) => ts.map((t) => {
        if (t.name !== 'model.layers.0.self_attn.q_proj.weight') return t;
        const data = new Uint8Array(t.data);
        new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4)[0] = Number.POSITIVE_INFINITY;
        return { ...t, data };
      }));
    } finally {
      await ckpt.close();
    }
    const again = await openCheckpoint(dir);
    try {
      await expect(compress(again, RECIPE, { out: path.join(root.dir, 'inf-out'), stats: statsFile, engine, evaluation: false })).rejects.toThrow(/layer 0, tensor model\.layers\.0\.self_attn\.q_proj\.weight: holds \+Inf/);
      // perplexity over NaN weights is refused, not printed as NaN
      await expect(evaluateWindows(again, engine, [Int32Array.from([1, 2, 3, 4])])).rejects.toThrow(/next-token loss is (NaN|infinite) at window 0.*not finite/);
    } finally {
      await again.close();
    }
  });

  it('non-finite factors are refused before their shard is written', () => {
    const group = { experts: [0, 1], p: 2, d: 2, rank: 1, erank: 1, F: 0, E: 0, C: 0, basis: Float32Array.from([1, 2]), coefficients: [Float32Array.from([1, 1]), Float32Array.from([1, Number.NaN])], errors: {} };
    expect(() => assertFactorsFinite(4, [{ type: 'gate', p: 2, d: 2, groups: [group as never] }])).toThrow(/layer 4 gate: coefficients of expert 1 holds NaN/);
    group.coefficients[1][1] = 0;
    expect(() => assertFactorsFinite(4, [{ type: 'gate', p: 2, d: 2, groups: [group as never] }])).not.toThrow();
  });
});
