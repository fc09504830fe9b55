/**
 * What the real-client tests make and check of rfid-moe's outputs: the three outputs a family test
 * writes (`compress` dense and factored from synthetic routing statistics, `densify` of the
 * factored one) and the two verdicts on what transformers made of a checkpoint: loaded with nothing
 * missing, unexpected or mismatched and the runtime's logits, or refused with a message naming
 * rfid-moe. The family, multimodal and FP8 tests each wrote these out.
 */
import { expect } from 'vitest';
import type { Checkpoint } from '../../src/checkpoint/types.js';
import { compress } from '../../src/compress/pipeline.js';
import { densify } from '../../src/compressed/densify.js';
import type { Engine } from '../../src/engine/types.js';
import { writeRoutingStats } from '../../src/routing-stats/schema.js';
import { syntheticStats } from '../compress/helpers.js';
import { relativeError, type HfJobResult } from './python.js';

/** transformers' loading report of a checkpoint it loaded completely */
export const LOADED_COMPLETELY = { missing_keys: [], unexpected_keys: [], mismatched_keys: [] };

/** `${base}-dense`, `${base}-factored` and `${base}-densified`, from routing statistics written to `${base}-stats.json`. */
export async function writeCompressedOutputs(ckpt: Checkpoint, base: string, engine: Engine): Promise<void> {
  const stats = `${base}-stats.json`;
  await writeRoutingStats(stats, syntheticStats(ckpt));
  const recipe = { retain: 0.5, groupSize: 3, residual: { share: 0.05 } };
  await compress(ckpt, recipe, { out: `${base}-dense`, stats, engine, storage: 'dense', evaluation: false });
  await compress(ckpt, recipe, { out: `${base}-factored`, stats, engine, evaluation: false });
  await densify(`${base}-factored`, { out: `${base}-densified`, engine });
}

/** transformers loaded the checkpoint completely and its logits equal `ours` (f32 tolerance); `context` labels a failure (e.g. the versions). */
export function expectLoadedWithLogits(r: HfJobResult | undefined, ours: Float32Array | undefined, context: string): void {
  expect(r, context).toBeDefined();
  expect(r!.error, context).toBeUndefined();
  expect(r!.loading, context).toEqual(LOADED_COMPLETELY);
  expect(ours, context).toBeDefined();
  expect(r!.logits!.length * r!.logits![0].length, context).toBe(ours!.length);
  expect(relativeError(ours!, r!.logits!), context).toBeLessThan(1e-4);
}

/** transformers refused the checkpoint (a factored output) with a message that names rfid-moe. */
export function expectRefusedNamingRfidMoe(r: HfJobResult | undefined, context: string): void {
  expect(r, context).toBeDefined();
  expect(r!.ok, context).toBe(false);
  expect(r!.error, context).toMatch(/rfid-moe/);
}
