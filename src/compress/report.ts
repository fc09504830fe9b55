/**
 * The report of one compression run, as JSON (`rfid-moe-report.json`, and the return value of
 * `compress()`) and Markdown (`rfid-moe-report.md`): per layer, matrix type and group the rank,
 * effective rank, F, E, C, relative errors before and after the residual and the residual energy
 * recovered; parameter counts with the three reductions; time per layer; engine; calibration;
 * fidelity against the original when it was measured.
 */
import type { LayerChoices } from './spectral-layer.js';
import type { ParameterCounts } from '../checkpoint/counts.js';
import type { ProjectionDescriptor } from '../residual/projection.js';

export interface GroupReport {
  group: number;
  experts: number[];
  rank: number;
  erank: number;
  /** routing-frequency share, effective-rank share, fused score */
  F: number;
  E: number;
  C: number;
  /** ‖M − A·B‖ / ‖M‖ over the group before the residual, and with it */
  weightRelBefore: number;
  weightRelAfter: number;
  /** output-space errors ‖(W − Ŵ)Xᵀ‖ / ‖WXᵀ‖ (only with calibration Gram matrices) */
  outputRelBefore?: number;
  outputRelAfter?: number;
  /** fraction of the low-rank error energy the residual recovered (0 without residual) */
  residualEnergyRecovered: number;
  residual: ProjectionDescriptor | null;
  whiteningDamping?: number;
  /** absent: shared input-side basis (see CompressedGroup.structure) */
  structure?: 'output-basis' | 'base-delta';
  /** per expert rank of a 'base-delta' group */
  expertRanks?: number[];
}

export interface TypeReport {
  p: number;
  d: number;
  params: { original: number; stored: number };
  /** stored / original for this layer and type */
  ratio: number;
  /** one rank unit of a full group in this layer, as a fraction of the original (the allocation's tolerance) */
  rankUnitShare: number;
  groups: GroupReport[];
  warnings: string[];
  /** what the layer chose by measurement (structure candidates and their predicted errors, the
   * residual gate's energy comparison), on the spectral path */
  choices?: LayerChoices;
}

export interface LayerReport {
  layer: number;
  kind: 'moe' | 'dense';
  /** wall time spent on this layer (0 for a layer recovered from an earlier, interrupted run) */
  seconds: number;
  types: Partial<Record<'gate' | 'up' | 'down', TypeReport>>;
}

export interface Reduction {
  before: number;
  after: number;
  /** after / before */
  kept: number;
  /** 1 − kept */
  removed: number;
}

export interface Fidelity {
  /** what the held-out sequences were */
  on: string;
  sequences: number;
  tokens: number;
  meanKl: number;
  top1Agreement: number;
  perplexity?: number;
  referencePerplexity?: number;
}

export interface CompressionReport {
  tool: string;
  model: { dir: string; family: string; modelType: string; fingerprint: string };
  out: string;
  storage: 'factored' | 'dense';
  recipe: Record<string, unknown>;
  /** 'retain' or 'remove': how the user gave the budget (γ is always stored as retain) */
  budgetGivenAs: 'retain' | 'remove';
  runFingerprint: string;
  engine: string;
  calibration: { source: 'stats' | 'dataset' | 'self-sampled'; description: string };
  params: {
    original: ParameterCounts;
    /** parameters of the compressed matrix types, before and after */
    compressedTypes: { original: number; stored: number };
    reductions: { gateUp: Reduction; allExperts: Reduction; wholeModel: Reduction };
  };
  layers: LayerReport[];
  /** layers taken over from an earlier, interrupted run */
  resumedLayers: number[];
  seconds: number;
  fidelity?: Fidelity;
  warnings: string[];
  /** set when the run compressed only some layers (one part of a sharded run) */
  part?: { layers: number[]; numLayers: number; manifest: string };
}

function reduction(before: number, after: number): Reduction {
  const kept = before > 0 ? after / before : 1;
  return { before, after, kept, removed: 1 - kept };
}

/** The three reductions from the original counts and what the compressed types store. */
export function reductionsOf(
  counts: ParameterCounts,
  layers: readonly LayerReport[],
): CompressionReport['params']['reductions'] & { compressedTypes: { original: number; stored: number } } {
  let original = 0;
  let stored = 0;
  let gateUpOriginal = 0;
  let gateUpStored = 0;
  for (const l of layers) {
    for (const [type, t] of Object.entries(l.types)) {
      if (!t) continue;
      original += t.params.original;
      stored += t.params.stored;
      if (type !== 'down') {
        gateUpOriginal += t.params.original;
        gateUpStored += t.params.stored;
      }
    }
  }
  return {
    gateUp: reduction(counts.routedGateUp, counts.routedGateUp - gateUpOriginal + gateUpStored),
    allExperts: reduction(counts.experts, counts.experts - original + stored),
    wholeModel: reduction(counts.total, counts.total - original + stored),
    compressedTypes: { original, stored },
  };
}

const pct = (x: number) => `${(100 * x).toFixed(2)}%`;
const num = (x: number) => x.toLocaleString('en-US');
const fix = (x: number | undefined, digits = 4) => (x === undefined ? '—' : x.toFixed(digits));

export function reportToMarkdown(r: CompressionReport): string {
  const { gateUp, allExperts, wholeModel } = r.params.reductions;
  const lines: string[] = [
    `# RFID-MoE compression report`,
    '',
    `- model: ${r.model.dir} (${r.model.family}, ${r.model.modelType})`,
    `- output: ${r.out} (${r.storage})`,
    `- budget: retain γ = ${String(r.recipe.retain)} of the compressed matrices (given as ${r.budgetGivenAs}${r.budgetGivenAs === 'remove' ? `, remove ρ = ${(1 - Number(r.recipe.retain)).toFixed(4)}` : ''})`,
    `- recipe: \`${JSON.stringify(r.recipe)}\``,
    `- calibration: ${r.calibration.source} — ${r.calibration.description}`,
    `- engine: ${r.engine}`,
    `- time: ${r.seconds.toFixed(1)} s${r.resumedLayers.length > 0 ? ` (layers ${r.resumedLayers.join(', ')} taken over from an interrupted run)` : ''}`,
    '',
    '## Parameters',
    '',
    '| scope | before | after | kept | removed |',
    '|---|---:|---:|---:|---:|',
    `| routed gate+up | ${num(gateUp.before)} | ${num(gateUp.after)} | ${pct(gateUp.kept)} | ${pct(gateUp.removed)} |`,
    `| all routed experts | ${num(allExperts.before)} | ${num(allExperts.after)} | ${pct(allExperts.kept)} | ${pct(allExperts.removed)} |`,
    `| whole model | ${num(wholeModel.before)} | ${num(wholeModel.after)} | ${pct(wholeModel.kept)} | ${pct(wholeModel.removed)} |`,
    '',
  ];
  if (r.fidelity) {
    const f = r.fidelity;
    lines.push('## Fidelity against the original', '');
    lines.push(`On ${f.on}: ${f.sequences} sequence(s), ${f.tokens} predicted tokens.`, '');
    lines.push(`- mean KL(original ‖ compressed): ${f.meanKl.toExponential(4)} nats`);
    lines.push(`- top-1 agreement: ${pct(f.top1Agreement)}`);
    if (f.perplexity !== undefined && f.referencePerplexity !== undefined) {
      lines.push(`- perplexity: ${f.perplexity.toFixed(4)} (original ${f.referencePerplexity.toFixed(4)})`);
    }
    lines.push('');
  }
  lines.push('## Layers', '');
  lines.push('| layer | type | group | experts | rank | erank | F | E | C | rel. err. before | after | output err. after | residual energy |');
  lines.push('|---:|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const l of r.layers) {
    for (const [type, t] of Object.entries(l.types)) {
      if (!t) continue;
      for (const g of t.groups) {
        lines.push(
          `| ${l.layer} | ${type} | ${g.group} | ${g.experts.join(' ')} | ${g.rank} | ${g.erank.toFixed(1)} | ${fix(g.F)} | ${fix(g.E)} | ${fix(g.C)} | ${fix(g.weightRelBefore)} | ${fix(g.weightRelAfter)} | ${fix(g.outputRelAfter)} | ${pct(g.residualEnergyRecovered)} |`,
        );
      }
    }
  }
  lines.push('', '| layer | kind | seconds | stored / original (per type) |', '|---:|---|---:|---|');
  for (const l of r.layers) {
    const ratios = Object.entries(l.types)
      .map(([type, t]) => (t ? `${type} ${pct(t.ratio)}` : ''))
      .filter(Boolean)
      .join(', ');
    lines.push(`| ${l.layer} | ${l.kind} | ${l.seconds.toFixed(2)} | ${ratios || '—'} |`);
  }
  if (r.warnings.length > 0) {
    lines.push('', '## Warnings', '');
    for (const w of r.warnings) lines.push(`- ${w}`);
  }
  return lines.join('\n') + '\n';
}

/** The few lines the CLI prints when it is done. */
export function reportSummary(r: CompressionReport): string {
  const { gateUp, allExperts, wholeModel } = r.params.reductions;
  const lines = [
    `compressed ${r.model.dir} → ${r.out} (${r.storage}) in ${r.seconds.toFixed(1)} s with ${r.engine}`,
    `parameters: ${num(wholeModel.before)} → ${num(wholeModel.after)}`,
    `removed: ${pct(gateUp.removed)} of routed gate+up, ${pct(allExperts.removed)} of all routed experts, ${pct(wholeModel.removed)} of the whole model`,
    `calibration: ${r.calibration.source} (${r.calibration.description})`,
  ];
  if (r.fidelity) {
    lines.push(
      `fidelity on ${r.fidelity.on}: mean KL ${r.fidelity.meanKl.toExponential(3)} nats, top-1 agreement ${pct(r.fidelity.top1Agreement)} over ${r.fidelity.tokens} tokens`,
    );
  }
  return lines.join('\n') + '\n';
}
