/**
 * Weights read ahead: the layer-by-layer pass asks for layer l + 1 before it computes layer l,
 * and a MoE block for the next routed expert before it runs the current one, without changing a
 * result; a read that fails is reported by the pass, and one that nobody awaits because the pass
 * failed first never surfaces as an unhandled rejection.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openCheckpoint } from '../../src/checkpoint/open.js';
import type { Checkpoint } from '../../src/checkpoint/types.js';
import { createTsEngine } from '../../src/engine/ts/index.js';
import { batchFromSequences, CheckpointWeights, runDecoder } from '../../src/runtime/index.js';
import type { ExpertWeights, LayerWeights, WeightProvider } from '../../src/runtime/weights.js';
import { makeTinyCheckpoint } from '../helpers/fixtures.js';

const work = mkdtempSync(path.join(tmpdir(), 'rfid-prefetch-'));
const engine = createTsEngine({ threads: 1 });
let ckpt: Checkpoint;
/** the first expert layer 0's MoE block runs for the test batch */
let firstExpert = -1;
beforeAll(async () => {
  ckpt = await openCheckpoint((await makeTinyCheckpoint(path.join(work, 'mixtral'), 'mixtral', { seed: 9 })).dir);
  const log: string[] = [];
  await runDecoder(logging(log), engine, batch(), { layers: 1 });
  firstExpert = Number(log.find((x) => x.startsWith('run expert 0.'))!.split('.')[1]);
});
afterAll(async () => {
  await ckpt.close();
  engine.dispose();
  rmSync(work, { recursive: true, force: true });
});

const batch = () => batchFromSequences([Int32Array.from({ length: 9 }, (_, i) => (i * 7) % 64), Int32Array.from({ length: 5 }, (_, i) => (i * 3 + 1) % 64)]);

/** A provider over the checkpoint that logs every weight request and every expert run, with optional faults. */
function logging(log: string[], faults: { layerRead?: number; expertRun?: [number, number] } = {}): WeightProvider {
  const base = new CheckpointWeights(ckpt);
  return {
    config: base.config,
    embed: (ids) => base.embed(ids),
    finalNorm: () => base.finalNorm(),
    lmHeadBias: () => base.lmHeadBias(),
    lmHeadRows: (s, e) => base.lmHeadRows(s, e),
    layer: async (index): Promise<LayerWeights> => {
      log.push(`read layer ${index}`);
      if (faults.layerRead === index) throw new Error(`disk error in layer ${index}`);
      const layer = await base.layer(index);
      if (layer.mlp.kind !== 'moe') return layer;
      const moe = layer.mlp.moe;
      return {
        ...layer,
        mlp: {
          kind: 'moe',
          moe: {
            ...moe,
            expert: async (e): Promise<ExpertWeights> => {
              log.push(`read expert ${index}.${e}`);
              const inner = await moe.expert(e);
              return {
                forward(eng, x, rows, out) {
                  log.push(`run expert ${index}.${e}`);
                  if (faults.expertRun?.[0] === index && faults.expertRun[1] === e) throw new Error(`expert ${index}.${e} failed`);
                  inner.forward(eng, x, rows, out);
                },
              };
            },
          },
        },
      };
    },
  };
}

describe('weights read ahead', () => {
  it('asks for the next layer and the next routed expert before running the current one, with results unchanged', async () => {
    const log: string[] = [];
    const ahead = await runDecoder(logging(log), engine, batch());
    const plain = await runDecoder(new CheckpointWeights(ckpt), engine, batch());
    expect(Array.from(ahead)).toEqual(Array.from(plain));

    const layers = ckpt.config.numLayers;
    for (let l = 0; l + 1 < layers; l++) {
      const firstRun = log.findIndex((x) => x.startsWith(`run expert ${l}.`));
      expect(firstRun).toBeGreaterThan(-1);
      expect(log.indexOf(`read layer ${l + 1}`)).toBeLessThan(firstRun);
    }
    // inside each layer: every run is preceded by the read of the expert run after it
    const runs = log.filter((x) => x.startsWith('run expert'));
    expect(runs.length).toBeGreaterThan(layers);
    for (let i = 0; i + 1 < runs.length; i++) {
      const [l, e] = runs[i].slice('run expert '.length).split('.');
      const [l2, e2] = runs[i + 1].slice('run expert '.length).split('.');
      if (l !== l2) continue;
      expect(log.indexOf(`read expert ${l2}.${e2}`)).toBeLessThan(log.indexOf(`run expert ${l}.${e}`));
    }
    // nothing is read twice
    expect(new Set(log.filter((x) => x.startsWith('read'))).size).toBe(log.filter((x) => x.startsWith('read')).length);
  });

  it('reports a failed read ahead from the pass, and leaves no unhandled rejection when the pass fails first', async () => {
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown) => unhandled.push(reason);
    process.on('unhandledRejection', onUnhandled);
    try {
      // the read of layer 1 fails while layer 0 computes: the pass reports it when it reaches layer 1
      await expect(runDecoder(logging([], { layerRead: 1 }), engine, batch())).rejects.toThrow('disk error in layer 1');
      // layer 0 fails while layer 1 (whose read also fails) is read ahead: the pass reports layer 0's error
      const log: string[] = [];
      await expect(runDecoder(logging(log, { layerRead: 1, expertRun: [0, firstExpert] }), engine, batch())).rejects.toThrow(/expert 0\.\d+ failed/);
      expect(log).toContain('read layer 1');
      await new Promise((r) => setTimeout(r, 20));
      expect(unhandled).toEqual([]);
    } finally {
      process.off('unhandledRejection', onUnhandled);
    }
  });
});
