/**
 * How many of its experts' weights a compressed model's decoding step reads, against its original,
 * weighted by how often each expert is routed to.
 *
 *   npx tsx bench/routed-bytes.ts <compressed-dir> [--json]
 *
 * A decoding step reads only the routed experts, and the rank allocation gives the most rank to
 * the experts routed most often, so the bytes a step reads shrink less than the checkpoint does.
 * This reads the output's rfid_moe block: each group's rank and structure, and each layer's
 * calibration routing counts (the frequencies the allocation used). Per expert and matrix type it
 * counts the parameters one routed token's product reads:
 * - a type left dense: p·d;
 * - one input-side basis per group (Ŵ_e = A_e·B_g) or an output-side one (Ŵ_e = U_g·C_e): the
 *   expert's coefficients and the group's whole basis, p·r + r·d. The runtime multiplies each
 *   routed expert's rows by its group's basis on their own, so a basis is read once for each
 *   routed member (from cache when two members share a step);
 * - base-delta (Ŵ_e = W̄_g + A_e·B_e): p·d + K_e·(p + d);
 * - a tile residual: its q values of η.
 * The original reads p·d per type. Both are parameter counts: with factors in the checkpoint's
 * own dtype (the usual case) the byte ratio is the same.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseRfidBlock, type GroupBlock, type TypeBlock } from '../src/compress/output/block.js';

/** Parameters one routed token's product with expert `e` of this type reads. */
function perExpert(type: TypeBlock, group: GroupBlock, e: number): number {
  const { p, d } = type;
  const residual = group.residual ? group.residual.q : 0;
  if (group.structure === 'base-delta') {
    const k = group.expertRanks![group.experts.indexOf(e)];
    return p * d + k * (p + d) + residual;
  }
  return group.rank * (p + d) + residual;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const dir = args.find((a) => !a.startsWith('--'));
  if (!dir) throw new Error('usage: tsx bench/routed-bytes.ts <compressed-dir> [--json]');
  const file = path.join(dir, 'config.json');
  const text = await readFile(file, 'utf8').catch(() => {
    throw new Error(`cannot read ${file}: give the directory of a compressed output (rfid-moe compress --out)`);
  });
  const config = JSON.parse(text) as { rfid_moe?: unknown };
  if (config.rfid_moe === undefined) throw new Error(`${file} has no rfid_moe block: ${dir} is not an rfid-moe output; give a compressed one`);
  const block = parseRfidBlock(config.rfid_moe, file);
  if (block.storage === 'dense') {
    throw new Error(`${dir} is a dense output: its experts are stored at their original size, so a step reads what the original's reads; give the factored output`);
  }
  const rows: Array<{ layer: number; routedRatio: number; unweightedRatio: number }> = [];
  let routed = 0, routedOriginal = 0, all = 0, allOriginal = 0;
  for (const layer of block.layers) {
    const counts = layer.routingCounts;
    const types = Object.values(layer.types);
    if (types.length === 0) continue;
    // the dense size of one expert (every type), from the factored types' shapes; a type left
    // dense has the shape of its sibling (gate and up p × d, down d × p)
    const [{ p, d }] = types;
    const densePerType = p * d;
    let lr = 0, lro = 0, la = 0, lao = 0;
    for (let e = 0; e < counts.length; e++) {
      let reads = 0;
      for (const t of ['gate', 'up', 'down'] as const) {
        const type = layer.types[t];
        const group = type?.groups.find((g) => g.experts.includes(e));
        reads += type && group ? perExpert(type, group, e) : densePerType;
      }
      lr += counts[e] * reads; lro += counts[e] * 3 * densePerType;
      la += reads; lao += 3 * densePerType;
    }
    rows.push({ layer: layer.layer, routedRatio: lr / lro, unweightedRatio: la / lao });
    routed += lr; routedOriginal += lro; all += la; allOriginal += lao;
  }
  const summary = { dir, routedRatio: routed / routedOriginal, unweightedRatio: all / allOriginal, layers: rows };
  if (json) {
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
    return;
  }
  console.log(`${dir}: experts' parameters a decoding step reads, against the original`);
  console.log('| layer | weighted by routing counts | every expert alike |');
  console.log('|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.layer} | ${r.routedRatio.toFixed(3)} | ${r.unweightedRatio.toFixed(3)} |`);
  console.log(`| all | ${summary.routedRatio.toFixed(3)} | ${summary.unweightedRatio.toFixed(3)} |`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : err);
  process.exit(1);
});
