/**
 * Cutting a layer's experts into groups that share one basis.
 */

export type GroupOrder = 'frequency' | 'index';

/**
 * Groups of `k` experts. 'frequency': experts sorted by routing frequency, descending, ties by
 * lower index (so equal-frequency layers group in index order, reproducibly); 'index': experts
 * 0..k−1, k..2k−1, … (the MoBE baseline). When k does not divide n the last group is smaller.
 * Within a group, experts keep the sorted order; each group lists expert indices.
 */
export function groupExperts(frequencies: readonly number[], k: number, order: GroupOrder = 'frequency'): number[][] {
  const n = frequencies.length;
  if (n === 0) throw new RangeError('no experts to group');
  if (!Number.isInteger(k) || k < 1) throw new RangeError(`group size must be a positive integer, got ${k}`);
  if (k > n) throw new RangeError(`group size ${k} is larger than the ${n} experts of the layer; use a group size ≤ ${n}`);
  for (let i = 0; i < n; i++) {
    const f = frequencies[i];
    if (!Number.isFinite(f) || f < 0) throw new RangeError(`frequency of expert ${i} is ${f}; frequencies must be finite and ≥ 0`);
  }
  const experts = Array.from({ length: n }, (_, i) => i);
  if (order === 'frequency') experts.sort((a, b) => frequencies[b] - frequencies[a] || a - b);
  const groups: number[][] = [];
  for (let start = 0; start < n; start += k) groups.push(experts.slice(start, start + k));
  return groups;
}
