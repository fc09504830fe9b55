/**
 * Model fingerprint: `sha256:` + hex sha256 of a canonical JSON of (1) config.json as parsed,
 * keys sorted, and (2) every tensor's name, dtype and shape, sorted by name. It identifies the
 * architecture and the stored layout cheaply (no weight bytes are read, so it costs
 * milliseconds on a 100 GB model) and changes when a model is compressed or re-typed; it does
 * NOT tell apart two checkpoints that differ only in weight values (e.g. two fine-tunes).
 */
import { createHash } from 'node:crypto';
import type { Checkpoint } from '../checkpoint/types.js';

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value as object).sort().map((k) => [k, canonical((value as Record<string, unknown>)[k])]));
  }
  return value;
}

export function modelFingerprint(ckpt: Pick<Checkpoint, 'config' | 'tensorNames' | 'tensor'>): string {
  const tensors = ckpt
    .tensorNames()
    .slice()
    .sort()
    .map((name) => {
      const t = ckpt.tensor(name);
      return [name, t?.dtype ?? null, t?.shape ?? null];
    });
  const text = JSON.stringify({ config: canonical(ckpt.config.raw), tensors });
  return 'sha256:' + createHash('sha256').update(text).digest('hex');
}
