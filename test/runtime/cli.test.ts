/**
 * `rfid-moe calibrate` and `rfid-moe eval` end to end in a child process: files written,
 * stdout results, stderr progress, and clear exit-2 errors (missing tokenizer, MLA, bad flags).
 */
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadRoutingStats } from '../../src/routing-stats/index.js';
import { rewriteModelFile } from '../checkpoint/rewrite.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { hasSharedData, repoRoot, sharedPath } from '../helpers/shared-data.js';
import { cliArgs } from '../helpers/cli.js';

const run = promisify(execFile);
const work = mkdtempSync(path.join(tmpdir(), 'rfid-cli-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [...cliArgs, ...args], { cwd: repoRoot });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe.skipIf(!hasSharedData)('calibrate and eval commands', () => {
  let model: string;
  let dataset: string;
  beforeAll(async () => {
    model = (await makeTinyCheckpoint(path.join(work, 'model'), 'mixtral', { seed: 2, vocabSize: 50257, hiddenSize: 16 })).dir;
    copyFileSync(sharedPath('gpt2-tokenizer', 'tokenizer.json'), path.join(model, 'tokenizer.json'));
    dataset = path.join(work, 'data.jsonl');
    writeFileSync(dataset, Array.from({ length: 40 }, (_, i) => JSON.stringify({ text: `Row ${i}: the quick brown fox jumps over the lazy dog ${i * 7}.` })).join('\n'));
  });

  it('calibrate writes valid statistics and reports on stdout, progress on stderr', async () => {
    const out = path.join(work, 'stats.json');
    const r = await cli('calibrate', model, '--dataset', dataset, '--samples', '6', '--seq-len', '32', '--seed', '5', '--out', out, '--engine', 'ts', '--json');
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({ ok: true, moeLayers: 2, tokens: 192 });
    expect(r.stderr).toMatch(/^calibrate \[#{24}\] 100% layer 2\/2 · .* elapsed · ETA .* total$/m);
    const stats = await loadRoutingStats(out);
    expect(stats.calibration).toEqual({ samples: 6, seqLen: 32, seed: 5, tokens: 192 });
    expect(stats.dataset.format).toBe('jsonl');
    expect(stats.layers.every((l) => l.tokens === 192)).toBe(true);
  });

  it('eval prints perplexity, and KL/top-1 against a reference', async () => {
    const r = await cli('eval', model, '--dataset', dataset, '--seq-len', '64', '--max-windows', '3', '--reference', model, '--engine', 'ts', '--json', '--quiet');
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.model).toMatchObject({ windows: 3, seqLen: 64, tokens: 189 });
    expect(report.engine).toMatch(/^ts\b/); // the engine that ran is recorded with the timing
    expect(report.model.perplexity).toBeGreaterThan(1);
    expect(report.comparison.top1Agreement).toBe(1);
    expect(Math.abs(report.comparison.meanKl)).toBeLessThan(1e-9);
  });

  it('calibrate --out never overwrites a model file or writes into a model directory', async () => {
    const weights = path.join(model, 'model.safetensors');
    const before = readFileSync(weights);
    const onWeights = await cli('calibrate', model, '--dataset', dataset, '--samples', '2', '--seq-len', '16', '--out', weights, '--engine', 'ts');
    expect(onWeights.code).toBe(2);
    expect(onWeights.stderr).toMatch(/--out .*model\.safetensors names a model file/);
    expect(Buffer.compare(before, readFileSync(weights))).toBe(0);

    const inModel = await cli('calibrate', model, '--dataset', dataset, '--samples', '2', '--seq-len', '16', '--out', path.join(model, 'stats.json'), '--engine', 'ts', '--json');
    expect(inModel.code).toBe(2);
    expect(JSON.parse(inModel.stdout).error.message).toMatch(/is inside the model directory/);
    expect(existsSync(path.join(model, 'stats.json'))).toBe(false);

    const notes = path.join(work, 'notes.txt');
    writeFileSync(notes, 'my notes');
    const onNotes = await cli('calibrate', model, '--dataset', dataset, '--samples', '2', '--seq-len', '16', '--out', notes, '--engine', 'ts');
    expect(onNotes.code).toBe(2);
    expect(onNotes.stderr).toMatch(/exists and is not an rfid-moe statistics file; refusing to overwrite it/);
    expect(readFileSync(notes, 'utf8')).toBe('my notes');
  });

  it('calibrate refuses a --seq-len beyond max_position_embeddings, a too-short or binary dataset, and NaN weights', async () => {
    const out = path.join(work, 'refused.json');
    const started = Date.now();
    const long = await cli('calibrate', model, '--dataset', dataset, '--seq-len', '100000', '--out', out, '--engine', 'ts');
    expect(long.code).toBe(2);
    expect(long.stderr).toMatch(/--seq-len 100000 is longer than the model's max_position_embeddings \(256\)/);
    expect(Date.now() - started).toBeLessThan(60_000);

    const short = await cli('calibrate', model, '--dataset', dataset, '--samples', '100', '--seq-len', '64', '--out', out, '--engine', 'ts');
    expect(short.code).toBe(2);
    expect(short.stderr).toMatch(/fewer than the 100 windows of 64 tokens need \(6400\)/);

    const binary = path.join(work, 'binary.txt');
    writeFileSync(binary, Buffer.from([0x61, 0x62, 0x00, 0x63]));
    const bin = await cli('calibrate', model, '--dataset', binary, '--samples', '1', '--seq-len', '2', '--out', out, '--engine', 'ts');
    expect(bin.code).toBe(2);
    expect(bin.stderr).toMatch(/is binary \(a NUL byte at offset 2\)/);

    const nanModel = (await makeTinyCheckpoint(path.join(work, 'nan-model'), 'mixtral', { seed: 2, vocabSize: 50257, hiddenSize: 16 })).dir;
    copyFileSync(sharedPath('gpt2-tokenizer', 'tokenizer.json'), path.join(nanModel, 'tokenizer.json'));
    const victim = 'model.layers.1.self_attn.v_proj.weight';
    await rewriteModelFile(nanModel, (ts) => ts.map((t) => {
      if (t.name !== victim) return t;
      const data = new Uint8Array(t.data);
      new Float32Array(data.buffer, data.byteOffset, data.byteLength / 4)[3] = Number.NaN;
      return { ...t, data };
    }));
    const nan = await cli('calibrate', nanModel, '--dataset', dataset, '--samples', '2', '--seq-len', '16', '--out', out, '--engine', 'ts');
    expect(nan.code).toBe(2);
    expect(nan.stderr).toContain(`layer 1, tensor ${victim}: holds NaN`);
    expect(existsSync(out)).toBe(false);

    // eval over the same weights: NaN perplexity is refused, not printed
    const evalNan = await cli('eval', nanModel, '--dataset', dataset, '--seq-len', '16', '--max-windows', '1', '--engine', 'ts', '--quiet');
    expect(evalNan.code).toBe(2);
    expect(evalNan.stderr).toMatch(/layer 1, tensor model\.layers\.1\.self_attn\.v_proj\.weight: holds NaN|next-token loss is NaN/);
  });

  it('fails with exit 2 and a clear message: no tokenizer, a RoPE scaling the runtime lacks, bad flag', async () => {
    const bare = (await makeTinyCheckpoint(path.join(work, 'bare'), 'olmoe', { seed: 1 })).dir;
    const noTok = await cli('eval', bare, '--dataset', dataset, '--json');
    expect(noTok.code).toBe(2);
    expect(JSON.parse(noTok.stdout).error.message).toMatch(/no tokenizer\.json in .*--tokenizer/);

    const scaled = (await makeTinyCheckpoint(path.join(work, 'v2'), 'deepseek_v2', { seed: 1, ropeScaling: { type: 'longrope', factor: 2 } })).dir;
    const refused = await cli('calibrate', scaled, '--dataset', dataset, '--out', path.join(work, 'x.json'));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('rope_scaling of type "longrope" is not implemented (the default RoPE, "yarn", "linear" and "llama3" are), so this model cannot be run by rfid-moe; it can still be compressed with routing statistics from another tool, given as --stats');
    expect(refused.stderr).not.toMatch(/\n\s+at /); // no stack trace

    const bad = await cli('calibrate', model, '--dataset', dataset, '--out', path.join(work, 'y.json'), '--samples', 'many');
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/--samples must be an integer/);
  });
});
