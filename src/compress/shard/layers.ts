/**
 * Which decoder layers a sharded compression run owns: `--shard i/N` (task i of N, 0-based, as a
 * scheduler's array index gives it) or `--layers a-b` (inclusive ranges, comma-separated).
 * Shards are contiguous, near-equal runs of layers, so that N tasks cover every layer exactly once.
 */
import { CompressError } from '../options.js';
import { shardRange } from '../../util/shards.js';

export { parseShard, shardRange } from '../../util/shards.js';

export type LayerSelection = { shard: { index: number; count: number } } | { layers: string };

/** Parses `0-11`, `3`, `0-3,8-11` into a sorted list of distinct layer indices. */
export function parseLayerList(text: string, numLayers: number): number[] {
  const out = new Set<number>();
  for (const part of text.split(',')) {
    const m = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(part);
    if (!m) throw new CompressError(`layers must be ranges like 0-11 or 0-3,8-11, got "${text}"`);
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) throw new CompressError(`layer range ${part.trim()} runs backwards; write it as ${to}-${from}`);
    if (to >= numLayers) throw new CompressError(`layer ${to} does not exist: the model has layers 0-${numLayers - 1}`);
    for (let l = from; l <= to; l++) out.add(l);
  }
  return [...out].sort((a, b) => a - b);
}

/** The layers a selection owns (empty shards are an error: nothing to do is a mistake in the job array). */
export function selectedLayers(selection: LayerSelection, numLayers: number): number[] {
  if ('shard' in selection) {
    const { index, count } = selection.shard;
    const [start, end] = shardRange(numLayers, index, count);
    if (end <= start) {
      throw new CompressError(`shard ${index}/${count} owns no layer: the model has only ${numLayers} decoder layers; use at most ${numLayers} shards`);
    }
    return Array.from({ length: end - start }, (_, i) => start + i);
  }
  return parseLayerList(selection.layers, numLayers);
}

/** A sorted layer list as compact ranges: [0,1,2,3,8,9] → "0-3,8-9" (the inverse of parseLayerList). */
export function formatLayerList(layers: number[]): string {
  const parts: string[] = [];
  for (let i = 0; i < layers.length; ) {
    let j = i;
    while (j + 1 < layers.length && layers[j + 1] === layers[j] + 1) j++;
    parts.push(j === i ? String(layers[i]) : `${layers[i]}-${layers[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}
