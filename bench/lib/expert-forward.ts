/**
 * The same experts held two ways (a packed stored form and BF16), timed through their own
 * `forward` as a decoding step (1 row) and a prompt (64 rows) run them: `steps` of each, top-k
 * experts drawn at random (seeded) a step, the two ways one after the other on the same input,
 * median milliseconds; and whether every output was the same bit for bit. For the benches that
 * compare how experts are held (fp8-load.ts, mxfp4-load.ts).
 */
import type { Engine } from '../../src/engine/types.js';
import type { ExpertWeights } from '../../src/runtime/weights.js';
import { Rng } from '../../test/helpers/rng.js';

const median = (xs: number[]) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)];

export function timeExpertForward<W extends string>(
  engine: Engine,
  held: Record<W, ExpertWeights[]>,
  ways: readonly [W, W],
  hidden: number,
  topK: number,
  steps: number,
): { stepMs: Record<W, number>; promptMs: Record<W, number>; identical: boolean } {
  const rng = new Rng(7);
  const experts = held[ways[0]].length;
  let identical = true;
  const time = (rows: number): Record<W, number> => {
    const x = Float32Array.from({ length: rows * hidden }, () => rng.normal());
    const chosen = Array.from({ length: topK }, () => Math.floor(rng.next() * experts));
    const outs = ways.map(() => new Float32Array(rows * hidden));
    const ms = {} as Record<W, number>;
    ways.forEach((way, w) => {
      const t0 = performance.now();
      for (const e of chosen) held[way][e].forward(engine, x, rows, outs[w]);
      ms[way] = performance.now() - t0;
    });
    if (outs[0].some((v, i) => !Object.is(v, outs[1][i]))) identical = false;
    return ms;
  };
  // once each first, untimed
  time(1);
  time(64);
  const stepTimes = Array.from({ length: steps }, () => time(1));
  const promptTimes = Array.from({ length: steps }, () => time(64));
  const med = (xs: Array<Record<W, number>>) => Object.fromEntries(ways.map((way) => [way, median(xs.map((x) => x[way]))])) as Record<W, number>;
  return { stepMs: med(stepTimes), promptMs: med(promptTimes), identical };
}
