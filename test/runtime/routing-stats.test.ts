/**
 * Routing statistics: file schema and arithmetic checks, fingerprint, low-token warnings, Gram
 * matrices streamed to disk, fused experts and the MLA error, through the library API.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import {
  collectRoutingCounts,
  collectRoutingStats,
  countRouting,
  GramDirectorySink,
  GramObserver,
  lazyLayerGrams,
  loadGram,
  type GramWeighting,
  loadRoutingStats,
  modelFingerprint,
  writeRoutingStats,
} from '../../src/routing-stats/index.js';
import { batchFromSequences, CheckpointWeights, DenseSwiGlu, forwardLogits, withExperts } from '../../src/runtime/index.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';
import { readGramFile, readGramFileSync, writeGramFile } from '../../src/routing-stats/gram-io.js';
import { checkRoomForGrams, gramBytes } from '../../src/routing-stats/gram-room.js';
import { writeSafetensors } from '../../src/io/safetensors-writer.js';

const work = mkdtempSync(path.join(tmpdir(), 'rfid-stats-'));
const engine = createTsEngine({ threads: 1 });
afterAll(() => {
  engine.dispose();
  rmSync(work, { recursive: true, force: true });
});

const windows = [0, 1, 2, 3].map((w) => Int32Array.from({ length: 12 }, (_, i) => (w * 17 + i * 5) % 64));
const info = { dataset: { file: 'd.txt', format: 'text', sha256: 'a'.repeat(64), tokens: 1000 }, samples: 4, seqLen: 12, seed: 3 };

describe('routing statistics', () => {
  it('are written atomically, reload identically, and carry counts that sum to tokens × topK', async () => {
    const ckpt = await openCheckpoint((await makeTinyCheckpoint(path.join(work, 'olmoe'), 'olmoe', { seed: 4 })).dir);
    try {
      const stats = await collectRoutingStats(ckpt, engine, windows, { ...info, minTokens: 8 });
      expect(stats.layers.map((l) => l.layer)).toEqual(ckpt.layout.layers.filter((l) => l.kind === 'moe').map((l) => l.index));
      for (const l of stats.layers) {
        expect(l.tokens).toBe(48);
        expect(l.counts.reduce((a, b) => a + b, 0)).toBe(48 * ckpt.config.topK);
      }
      // 48 tokens × 2 / 8 experts = 12 on average: some expert falls under 8 in this fixture, or none does
      const low = stats.layers.some((l) => l.counts.some((c) => c < 8));
      expect(stats.warnings.length > 0).toBe(low);
      const file = path.join(work, 'stats.json');
      await writeRoutingStats(file, stats);
      expect(await loadRoutingStats(file)).toEqual(stats);
      expect(stats.model.fingerprint).toBe(modelFingerprint(ckpt));

      const broken = JSON.parse(readFileSync(file, 'utf8'));
      broken.layers[0].counts[0] += 1;
      writeFileSync(file, JSON.stringify(broken));
      await expect(loadRoutingStats(file)).rejects.toThrow(/counts sum to \d+, expected tokens × topK/);
      writeFileSync(file, JSON.stringify({ ...stats, version: 99 }));
      await expect(loadRoutingStats(file)).rejects.toThrow(/not a valid routing-stats file: version/);
    } finally {
      await ckpt.close();
    }
  });

  it('the fingerprint follows config and tensor layout (dtype), not the path', async () => {
    const a = await openCheckpoint((await makeTinyCheckpoint(path.join(work, 'fa'), 'mixtral', { seed: 1 })).dir);
    const b = await openCheckpoint((await makeTinyCheckpoint(path.join(work, 'fb'), 'mixtral', { seed: 1 })).dir);
    const c = await openCheckpoint((await makeTinyCheckpoint(path.join(work, 'fc'), 'mixtral', { seed: 1, dtype: 'BF16' })).dir);
    try {
      expect(modelFingerprint(a)).toBe(modelFingerprint(b));
      expect(modelFingerprint(a)).not.toBe(modelFingerprint(c));
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
  });

  it('Gram matrices streamed to a directory equal XᵀX of the observed rows, and add up over passes', async () => {
    const ckpt = await openCheckpoint((await makeTinyCheckpoint(path.join(work, 'g'), 'qwen2_moe', { seed: 6 })).dir);
    try {
      const h = ckpt.config.hiddenSize;
      const rowsSeen = new Map<string, Float32Array[]>();
      const spy = { onExpertInput: (l: number, e: number, x: Float32Array) => void rowsSeen.set(`${l}/${e}`, [...(rowsSeen.get(`${l}/${e}`) ?? []), x.slice()]) };
      const dir = path.join(work, 'grams');
      const sink = new GramDirectorySink(dir, h, modelFingerprint(ckpt));
      const grams = new GramObserver(engine, h, sink);
      const observer = { onExpertInput: async (l: number, e: number, x: Float32Array, rows: number) => (spy.onExpertInput(l, e, x), grams.onExpertInput(l, e, x, rows)) };
      // two passes over different windows: the sink must sum them
      for (const part of [windows.slice(0, 2), windows.slice(2)]) {
        await countRouting(ckpt, engine, batchFromSequences(part), { observer });
      }
      const manifest = await sink.finish();
      expect(Object.keys(manifest.entries).length).toBe(rowsSeen.size);
      // the room checked before calibrating bounds what the directory takes (every expert reached or not)
      const written = Object.values(manifest.entries).reduce((n, e) => n + statSync(path.join(dir, e.file)).size, 0);
      expect(written).toBeGreaterThan(0);
      expect(gramBytes(ckpt)).toBeGreaterThanOrEqual(written);
      expect(gramBytes(ckpt)).toBeLessThan((written / rowsSeen.size) * ckpt.config.numExperts * ckpt.layout.layers.length * 1.5);
      for (const [key, chunks] of rowsSeen) {
        const [l, e] = key.split('/').map(Number);
        const loaded = await loadGram(dir, l, e);
        const rows = chunks.reduce((n, c) => n + c.length / h, 0);
        expect(loaded?.tokens).toBe(rows);
        for (const [i, j] of [[0, 0], [1, 5], [h - 1, 3]]) {
          let direct = 0;
          for (const c of chunks) for (let r = 0; r < c.length / h; r++) direct += c[r * h + i] * c[r * h + j];
          expect(loaded!.gram[i * h + j]).toBeCloseTo(direct, 9);
          expect(loaded!.gram[j * h + i]).toBeCloseTo(direct, 9);
        }
      }
    } finally {
      await ckpt.close();
    }
  });

  it('a Gram file holds the upper triangle only (half the bytes); files of the whole matrix are still read; a damaged shape is refused', async () => {
    const h = 37;
    const x = Float64Array.from({ length: 50 * h }, (_, i) => Math.sin(i * 0.731) * (1 + (i % 7)));
    const gram = new Float64Array(h * h);
    engine.syrk(h, 50, x, gram, { trans: true });
    const packedFile = path.join(work, 'packed.gram.safetensors');
    await writeGramFile(packedFile, gram, h, { tokens: '50' });
    // the 8-byte values of the triangle, plus the safetensors header
    const bytes = readFileSync(packedFile).length;
    expect(bytes).toBeGreaterThan((h * (h + 1)) / 2 * 8);
    expect(bytes).toBeLessThan((h * (h + 1)) / 2 * 8 + 1024);
    expect(Array.from(readGramFileSync(packedFile).data)).toEqual(Array.from(gram));
    expect((await readGramFile(packedFile)).metadata).toMatchObject({ tokens: '50' });
    // an earlier build's file: tensor "gram", the whole [H, H] matrix
    const wholeFile = path.join(work, 'whole.gram.safetensors');
    await writeSafetensors(wholeFile, [{ name: 'gram', dtype: 'F64', shape: [h, h], data: new Uint8Array(gram.buffer) }]);
    expect(Array.from(readGramFileSync(wholeFile).data)).toEqual(Array.from(gram));
    // 10 values are no H × H triangle (1, 3, 6, 10 are: 11 is not)
    const damaged = path.join(work, 'damaged.gram.safetensors');
    await writeSafetensors(damaged, [{ name: 'gram_upper', dtype: 'F64', shape: [11], data: new Uint8Array(88) }]);
    expect(() => readGramFileSync(damaged)).toThrow(/gram_upper" has shape \[11\].*upper triangle.*calibrate again/);
    await writeSafetensors(damaged, [{ name: 'gram', dtype: 'F64', shape: [3, 4], data: new Uint8Array(96) }]);
    await expect(readGramFile(damaged)).rejects.toThrow(/"gram" has shape \[3, 4\].*not square/);
  });

  it('the triangle unpacks to the whole matrix at sizes across the mirror\'s tiles of 64, and from values not 8-byte aligned in the file', async () => {
    for (const h of [1, 63, 64, 65, 130, 200]) {
      const gram = new Float64Array(h * h);
      for (let i = 0; i < h; i++) for (let j = i; j < h; j++) gram[i * h + j] = gram[j * h + i] = Math.sin(i * 7.1 + j * 3.3) + i - j;
      const file = path.join(work, `tiles-${h}.gram.safetensors`);
      await writeGramFile(file, gram, h, {});
      expect(readGramFileSync(file).data, `hidden ${h}`).toEqual(gram);
    }
    // a header whose length is not a multiple of 8 (the format allows it): the values are copied out
    const h = 5;
    const gram = Float64Array.from({ length: h * h }, (_, k) => Math.min(k % h, Math.floor(k / h)) * 10 + Math.max(k % h, Math.floor(k / h)));
    const upper = Float64Array.from({ length: 15 }, (_, k) => {
      let i = 0;
      let at = k;
      while (at >= h - i) at -= h - i++;
      return gram[i * h + i + at];
    });
    const header = Buffer.from(JSON.stringify({ gram_upper: { dtype: 'F64', shape: [15], data_offsets: [0, 120] } }) + ' ');
    expect(header.length % 8).not.toBe(0);
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(header.length));
    const odd = path.join(work, 'unaligned.gram.safetensors');
    writeFileSync(odd, Buffer.concat([length, header, Buffer.from(upper.buffer)]));
    expect(readGramFileSync(odd).data).toEqual(gram);
  });

  it('a Gram directory has no manifest between its first file and finish(): a stale one is removed, the new one written after the files', async () => {
    const dir = path.join(work, 'grams-manifest');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'grams.json'), JSON.stringify({ format: 'rfid-moe.expert-grams', version: 1, hiddenSize: 3, modelFingerprint: 'old', entries: {} }));
    const sink = new GramDirectorySink(dir, 3, 'new');
    await sink.add(0, 1, Float64Array.of(2, 1, 0, 1, 3, 0, 0, 0, 4), 5);
    expect(existsSync(path.join(dir, 'grams.json'))).toBe(false);
    const manifest = await sink.finish();
    expect(JSON.parse(readFileSync(path.join(dir, 'grams.json'), 'utf8'))).toEqual(manifest);
    expect(manifest.modelFingerprint).toBe('new');
    expect(Array.from((await loadGram(dir, 0, 1))!.gram)).toEqual([2, 1, 0, 1, 3, 0, 0, 0, 4]);
  });

  it('a Gram file that fails to write in the background fails finish(), and no manifest vouches for it', async () => {
    const dir = path.join(work, 'grams-failing');
    // the target name taken by a non-empty directory: renaming the finished file over it fails
    mkdirSync(path.join(dir, 'layer0-expert1.gram.safetensors'), { recursive: true });
    writeFileSync(path.join(dir, 'layer0-expert1.gram.safetensors', 'x'), 'x');
    const sink = new GramDirectorySink(dir, 2, 'fp');
    await sink.add(0, 1, Float64Array.of(1, 0, 0, 1), 3);
    await expect(sink.finish()).rejects.toThrow();
    expect(existsSync(path.join(dir, 'grams.json'))).toBe(false);
  });

  it('a Gram directory is refused before any work where its disk lacks the room, naming both sizes and the fix', async () => {
    await expect(checkRoomForGrams(path.join(work, 'not', 'yet', 'made'), 2 ** 62, 'use a larger disk')).rejects.toThrow(
      /the Gram matrices need up to \d+\.\d+ GiB in .*not\/yet\/made, and its disk has \d+\.\d+ (G|M)iB free for them; use a larger disk/,
    );
    await expect(checkRoomForGrams(path.join(work, 'not', 'yet', 'made'), 1, 'use a larger disk')).resolves.toBeUndefined();
  });

  it('routing-weighted Gram matrices sum w·x xᵀ (w² for routing-squared) with the weights the block applies; the lazy reader returns them, zeros for unreached experts', async () => {
    const ckpt = await openCheckpoint((await makeTinyCheckpoint(path.join(work, 'gw'), 'qwen2_moe', { seed: 7 })).dir);
    try {
      const h = ckpt.config.hiddenSize;
      const seen = new Map<string, Array<{ x: Float32Array; w: Float32Array }>>();
      const dirs = { routing: path.join(work, 'grams-w'), 'routing-squared': path.join(work, 'grams-w2') } as const;
      const sinks = Object.fromEntries(Object.entries(dirs).map(([k, dir]) => [k, new GramDirectorySink(dir, h, modelFingerprint(ckpt))]));
      const observers = Object.entries(sinks).map(([k, sink]) => new GramObserver(engine, h, sink, k as GramWeighting));
      const observer = {
        onExpertInput: async (l: number, e: number, x: Float32Array, rows: number, w?: Float32Array) => {
          seen.set(`${l}/${e}`, [...(seen.get(`${l}/${e}`) ?? []), { x: x.slice(), w: w!.slice() }]);
          for (const o of observers) await o.onExpertInput(l, e, x, rows, w);
        },
      };
      await countRouting(ckpt, engine, batchFromSequences(windows), { observer });
      for (const sink of Object.values(sinks)) await sink.finish();
      const [firstKey] = seen.keys();
      const layer = Number(firstKey.split('/')[0]);
      for (const [weighting, dir] of Object.entries(dirs)) {
        const lazy = await lazyLayerGrams(dir, layer, h, 2);
        for (let e = 0; e < ckpt.config.numExperts; e++) {
          const chunks = seen.get(`${layer}/${e}`);
          const g = lazy(e);
          if (!chunks) {
            expect(g.every((v) => v === 0)).toBe(true);
            continue;
          }
          for (const [i, j] of [[0, 0], [2, 7]]) {
            let direct = 0;
            for (const { x, w } of chunks) for (let r = 0; r < w.length; r++) direct += (weighting === 'routing' ? w[r] : w[r] * w[r]) * x[r * h + i] * x[r * h + j];
            expect(g[i * h + j]).toBeCloseTo(direct, 6);
          }
        }
      }
    } finally {
      await ckpt.close();
    }
  });

  it('fused on-disk experts give the same logits and counts as per-expert tensors', async () => {
    const a = await openCheckpoint((await makeTinyCheckpoint(path.join(work, 'per'), 'deepseek', { seed: 9 })).dir);
    const b = await openCheckpoint((await makeTinyCheckpoint(path.join(work, 'fused'), 'deepseek', { seed: 9, fusedExperts: true, maxShardBytes: 20_000 })).dir);
    try {
      const batch = batchFromSequences(windows);
      expect(Array.from(await forwardLogits(b, engine, batch))).toEqual(Array.from(await forwardLogits(a, engine, batch)));
      expect((await collectRoutingCounts(b, engine, windows)).layers).toEqual((await collectRoutingCounts(a, engine, windows)).layers);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });

  it('withExperts plugs other expert weights into the same forward pass (the hook compressed models use)', async () => {
    const ckpt = await openCheckpoint((await makeTinyCheckpoint(path.join(work, 'plug'), 'qwen3_moe', { seed: 12 })).dir);
    try {
      const batch = batchFromSequences(windows.slice(0, 2));
      const base = new CheckpointWeights(ckpt);
      const { hiddenSize: h, expertIntermediateSize: p } = ckpt.config;
      const reread = withExperts(base, async (l, e) =>
        new DenseSwiGlu(await ckpt.readExpert(l, e, 'gate'), await ckpt.readExpert(l, e, 'up'), await ckpt.readExpert(l, e, 'down'), h, p),
      );
      const silenced = withExperts(base, async (l, e) => (l === 0 && e === 1 ? new DenseSwiGlu(new Float32Array(p * h), new Float32Array(p * h), new Float32Array(h * p), h, p) : undefined));
      const reference = await forwardLogits(base, engine, batch);
      expect(Array.from(await forwardLogits(reread, engine, batch))).toEqual(Array.from(reference));
      const changed = await forwardLogits(silenced, engine, batch);
      expect(changed.some((v, i) => v !== reference[i])).toBe(true);
    } finally {
      await ckpt.close();
    }
  });

  it('MLA (DeepSeek-V2) is counted like any family; a RoPE scaling the runtime lacks fails with a clear message', async () => {
    const dir = (await makeTinyCheckpoint(path.join(work, 'v2'), 'deepseek_v2', { seed: 1 })).dir;
    let ckpt = await openCheckpoint(dir);
    try {
      const counts = await collectRoutingCounts(ckpt, engine, windows);
      // layer 0 is dense (first_k_dense_replace 1); every token of every window routed top-k in the others
      const tokens = windows.reduce((n, w) => n + w.length, 0);
      expect(counts.layers.map((l) => l.layer)).toEqual([1, 2]);
      for (const l of counts.layers) expect(l.counts.reduce((a, b) => a + b, 0)).toBe(tokens * ckpt.config.topK);
    } finally {
      await ckpt.close();
    }
    const config = JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8'));
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, rope_scaling: { type: 'dynamic', factor: 2 } }));
    ckpt = await openCheckpoint(dir);
    try {
      expect(() => new CheckpointWeights(ckpt)).toThrow(/rope_scaling of type "dynamic" is not implemented \(the default RoPE, "yarn", "linear" and "llama3" are\)/);
      await expect(collectRoutingCounts(ckpt, engine, windows)).rejects.toThrow(/"dynamic" is not implemented/);
    } finally {
      await ckpt.close();
    }
    writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ ...config, partial_rotary_factor: 0.5 }));
    ckpt = await openCheckpoint(dir);
    try {
      expect(() => new CheckpointWeights(ckpt)).toThrow(/partial_rotary_factor 0.5 is not implemented/);
    } finally {
      await ckpt.close();
    }
  });
});
