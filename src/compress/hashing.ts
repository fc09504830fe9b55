/** Content hashes that identify a run's inputs (statistics, recipe blocks) independently of key order. */
import { createHash } from 'node:crypto';
import type { RoutingStats } from '../routing-stats/schema.js';

export function sha256(text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex');
}

/** The value with object keys sorted recursively, so that equal documents serialise equally. */
export function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical((value as Record<string, unknown>)[k])]));
  }
  return value;
}

export function statsHash(stats: RoutingStats): string {
  return sha256(JSON.stringify(canonical(stats)));
}
