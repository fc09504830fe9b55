/**
 * Spectrum-driven rank allocation: marginal-gain water-filling.
 *
 * Rank unit j of group g removes gain_{g,j} = w_g·σ²_{g,j} from the approximation error (σ the
 * group's singular values, whitened when the recipe whitens: then σ² is output-space energy and
 * already counts every routed token, so w_g = 1; on raw weights w_g is the routing-frequency share)
 * and costs c_g = |g|·p + d parameters. Because σ² is non-increasing within a group, the value of a
 * group is concave in its rank and taking units in order of gain per parameter is the optimal
 * fractional allocation; with equal unit costs (groups of one size) it is the optimal integer one.
 *
 * Budget: every group first gets one rank (as in every other allocation), then units are taken in
 * order of gain/cost while they fit. A unit that does not fit ends its group (its later units cost
 * the same and gain less), and the others go on, so on return no uncapped group can take one more
 * unit: the budget is met exactly in the sense of allocate.ts.
 *
 * The allocation is also offered over several layers at once (one global budget): pass every
 * layer's groups in one call.
 */
import { AllocationError } from './allocate.js';

export interface WaterfillGroup {
  /** σ² (or any non-increasing gains before weighting), at least `cap` entries used */
  energies: ArrayLike<number>;
  /** multiplier of this group's gains (routing share on raw weights; 1 when whitened) */
  weight: number;
  /** parameters per rank unit */
  unitCost: number;
  /** most rank the group may take */
  cap: number;
}

export interface WaterfillResult {
  ranks: number[];
  usedParams: number;
  leftoverParams: number;
  /** Σ_g w_g Σ_{j<K_g} σ²_{g,j}: the weighted energy kept */
  keptGain: number;
  /** Σ_g w_g Σ_{j≥K_g} σ²_{g,j}: the weighted energy lost (what the allocation minimises) */
  lostGain: number;
}

/** Binary max-heap over group indices keyed by the gain per parameter of their next unit. */
class Heap {
  private readonly items: number[] = [];
  constructor(private readonly key: (g: number) => number) {}
  get size(): number {
    return this.items.length;
  }
  private better(a: number, b: number): boolean {
    const ka = this.key(a);
    const kb = this.key(b);
    return ka > kb || (ka === kb && a < b);
  }
  push(g: number): void {
    const it = this.items;
    it.push(g);
    let i = it.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.better(it[i], it[parent])) break;
      [it[i], it[parent]] = [it[parent], it[i]];
      i = parent;
    }
  }
  pop(): number {
    const it = this.items;
    const top = it[0];
    const last = it.pop() as number;
    if (it.length > 0) {
      it[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let best = i;
        if (l < it.length && this.better(it[l], it[best])) best = l;
        if (r < it.length && this.better(it[r], it[best])) best = r;
        if (best === i) break;
        [it[i], it[best]] = [it[best], it[i]];
        i = best;
      }
    }
    return top;
  }
}

export function waterfill(groups: readonly WaterfillGroup[], budgetParams: number): WaterfillResult {
  if (groups.length === 0) throw new AllocationError('no groups to allocate rank to');
  if (!Number.isFinite(budgetParams)) throw new AllocationError(`rank budget is ${budgetParams}`);
  for (const [g, x] of groups.entries()) {
    if (!Number.isInteger(x.cap) || x.cap < 1) throw new AllocationError(`group ${g} cannot hold even rank 1 (cap ${x.cap}): matrices too small to factor`);
    if (!(x.unitCost > 0)) throw new AllocationError(`group ${g} has unit cost ${x.unitCost}`);
    if (!Number.isFinite(x.weight) || x.weight < 0) throw new AllocationError(`group ${g} has weight ${x.weight}; weights must be finite and ≥ 0`);
    if (x.energies.length < 1) throw new AllocationError(`group ${g} has an empty spectrum`);
  }
  const minimum = groups.reduce((a, x) => a + x.unitCost, 0);
  if (budgetParams < minimum) {
    throw new AllocationError(`rank budget ${Math.floor(budgetParams)} params cannot give each of the ${groups.length} groups one rank (needs ${minimum}); raise retain or lower the residual share`);
  }
  const energy = (g: number, j: number): number => {
    const e = groups[g].energies;
    return j < e.length ? Math.max(0, Number(e[j])) * groups[g].weight : 0;
  };
  const ranks = groups.map(() => 1);
  let left = budgetParams - minimum;
  const heap = new Heap((g) => energy(g, ranks[g]) / groups[g].unitCost);
  for (let g = 0; g < groups.length; g++) if (groups[g].cap > 1) heap.push(g);
  while (heap.size > 0) {
    const g = heap.pop();
    if (groups[g].unitCost > left) continue; // this group is done; cheaper groups may still fit
    ranks[g] += 1;
    left -= groups[g].unitCost;
    if (ranks[g] < groups[g].cap) heap.push(g);
  }
  let kept = 0;
  let lost = 0;
  for (let g = 0; g < groups.length; g++) {
    const e = groups[g].energies;
    for (let j = 0; j < e.length; j++) {
      if (j < ranks[g]) kept += energy(g, j);
      else lost += energy(g, j);
    }
  }
  return { ranks, usedParams: budgetParams - left, leftoverParams: left, keptGain: kept, lostGain: lost };
}
