/**
 * `rfid-moe inspect <checkpoint-dir | file.safetensors> [--json]`
 *
 * A directory: opened and validated as an MoE checkpoint, then summarised (family, which layers
 * are MoE, experts and top-k, expert shapes, dtypes, parameter counts, shards, validation).
 * An rfid-moe output: how it was made, and per MoE layer and type the groups, ranks, residual
 * lengths, bytes stored vs original and the structure the factors are stored in (`--verify` also
 * checks every file's recorded sha256).
 * An unfinished run: says so, and how to finish it (--resume).
 * A single .safetensors file: its tensors (name, dtype, shape, byte range) and metadata.
 * Any failure exits with status 2 and one message (a JSON error object with --json).
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { describeCheckpoint, type CheckpointDescription } from '../../checkpoint/describe.js';
import { CheckpointError } from '../../checkpoint/errors.js';
import type { Multipliers, NormKind, NormPlacement } from '../../checkpoint/types.js';
import { openCheckpoint } from '../../checkpoint/open.js';
import { SafetensorsFile } from '../../io/safetensors-reader.js';
import { describeCompressed, unfinishedRun, type CompressedDescription } from '../../compressed/describe.js';
import { isCompressedDir, loadCompressed } from '../../compressed/load.js';
import { stderrHashProgress } from '../../compressed/verify.js';
import { OptionError } from '../options.js';

export interface SafetensorsFileDescription {
  file: string;
  fileSize: number;
  /** N, the JSON header's length in bytes */
  headerLength: number;
  /** absolute file offset of the data buffer (8 + N); tensor byte ranges are relative to it */
  dataStart: number;
  metadata: Record<string, string> | null;
  tensorCount: number;
  parameterCount: number;
  tensors: Array<{ name: string; dtype: string; shape: number[]; dataOffsets: [number, number] }>;
}

export async function describeSafetensorsFile(file: string): Promise<SafetensorsFileDescription> {
  const st = await SafetensorsFile.open(file);
  try {
    const tensors = st.tensorNames().map((name) => {
      const t = st.tensor(name)!;
      return { name, dtype: t.dtype, shape: [...t.shape], dataOffsets: [t.dataOffsets[0], t.dataOffsets[1]] as [number, number] };
    });
    return {
      file: path.resolve(file),
      fileSize: st.fileSize,
      headerLength: st.dataStart - 8,
      dataStart: st.dataStart,
      metadata: st.metadata === null ? null : { ...st.metadata },
      tensorCount: tensors.length,
      parameterCount: tensors.reduce((sum, t) => sum + t.shape.reduce((a, b) => a * b, 1), 0),
      tensors,
    };
  } finally {
    await st.close();
  }
}

async function describeCheckpointDir(dir: string): Promise<CheckpointDescription> {
  const ckpt = await openCheckpoint(dir);
  try {
    return describeCheckpoint(ckpt);
  } finally {
    await ckpt.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Human output

const int = (n: number) => n.toLocaleString('en-US');
const shape = (s: readonly number[]) => `[${s.join(', ')}]`;
const list = (xs: readonly number[]) => (xs.length === 0 ? 'none' : xs.join(', '));
const layersText = (layers: readonly number[], numLayers: number) => (layers.length === numLayers ? 'every layer' : `layers ${layers.join(', ')}`);

function table(rows: string[][]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (c === r.length - 1 ? cell : cell.padEnd(widths[c]))).join('  ')).join('\n');
}

/** Left-pad the given columns so numbers line up on their last digit. */
function rightAlignColumns(rows: string[][], columns: number[]): string[][] {
  const widths = columns.map((c) => Math.max(...rows.map((r) => r[c].length)));
  return rows.map((r) => r.map((cell, c) => (columns.includes(c) ? cell.padStart(widths[columns.indexOf(c)]) : cell)));
}

/** The multipliers a model has, in words (Granite's four, AFMoE's embedding scale alone). */
function multipliersText(m: Multipliers): string {
  const parts = [
    m.embedding !== undefined && `embeddings × ${m.embedding}`,
    m.residual !== undefined && `residual × ${m.residual}`,
    m.attention !== undefined && `softmax scale ${m.attention}`,
    m.logits !== undefined && `logits ÷ ${m.logits}`,
  ];
  return parts.filter((s): s is string => typeof s === 'string').join(', ');
}

/** Where a layer's norms sit, said where that is not Llama's (one before each sublayer), with their kind where they are not RMS norms and Cohere's parallel block. */
function normsText(n: NormPlacement | undefined, kind: NormKind | undefined, parallel: boolean): string {
  const sites = n && [
    n.attentionInput && `before the attention${parallel ? ' and the MLP, which read it in parallel and join the residual together' : ''}`,
    n.attentionOutput && 'on the attention\'s output',
    n.mlpInput && 'before the MLP',
    n.mlpOutput && `on the MLP's output${n.mlpOutput === 'moe' ? ' in MoE layers' : ''}`,
  ];
  const where = sites ? sites.filter((s): s is string => typeof s === 'string').join(', ') : 'before the attention, before the MLP';
  return kind?.kind === 'layer' ? `LayerNorms (mean-centred, ${kind.bias ? 'with' : 'no'} bias) ${where}, and the final norm` : where;
}

export function formatCheckpoint(d: CheckpointDescription): string {
  const p = d.parameters;
  const pct = (n: number) => (p.total > 0 ? `${((100 * n) / p.total).toFixed(1)}%` : '-');
  const experts = [
    `${d.numExperts} routed per MoE layer, top-${d.topK}${d.routing === 'noaux_tc' ? ' by sigmoid scores with a correction bias (noaux_tc)' : d.routing === 'group_limited_greedy' ? ' within the best expert groups (group_limited_greedy)' : d.routing === 'group_limited_top2' ? ' within the expert groups whose two best probabilities sum highest' : d.routing === 'topk-softmax' ? ` of the ${d.routerLogitBias ? 'biased ' : ''}router logits, a softmax over those k` : d.routing === 'topk-sigmoid' ? ` of the router logits, weighted by their sigmoid${d.normTopkProb ? ' divided by their sum' : ''}` : d.routing === 'sparsemixer' ? ` by sparsemixer (the best logit, then the best of the rest, each weighed by a softmax over the logits within a relative margin of ${2 * (d.routerJitterEps ?? 0)} of it)` : ''}${d.routingWeightsScaleInputs ? ', each weight multiplying the expert\'s input, not its output' : ''}`,
    ...(d.routing === 'topk-softmax' || d.routing === 'topk-sigmoid' || d.routing === 'sparsemixer' ? [] : [`renormalised top-k: ${d.normTopkProb ? 'yes' : 'no'}`]),
    ...(d.expertActivation ? [`activation (up + 1)·g·sigmoid(${d.expertActivation.alpha}·g), g = min(gate, ${d.expertActivation.limit}), up within ±${d.expertActivation.limit}, biases on the projections`] : []),
    ...(d.routedScalingFactor !== 1 ? [`routed scaling ${d.routedScalingFactor}`] : []),
    d.sharedExpertIntermediateSize > 0 ? `shared expert width ${d.sharedExpertIntermediateSize}${d.sharedExpertCombination === 'average' ? ', averaged with the routed experts\' sum' : ''}` : 'no shared expert',
  ].join('; ');
  const lines = [
    table([
      ['checkpoint', d.dir],
      ['family', `${d.familyLabel} (model_type ${d.modelType})${d.multimodalWrapper ? `, the language model of a ${d.multimodalWrapper.label} checkpoint (model_type ${d.multimodalWrapper.modelType}; its other tensors are carried into outputs unchanged)` : ''}`],
      ['attention', `${d.attention === 'mla' ? `MLA (multi-head latent attention), ${d.numHeads} heads` : `${d.numHeads} heads, ${d.layerKvHeads !== undefined ? `kv heads by layer ${d.layerKvHeads.join(', ')}` : `${d.numKvHeads} kv heads`}, head_dim ${d.headDim}${d.valueHeadDim !== undefined ? `, values ${d.valueHeadDim} wide` : ''}${d.attentionValueScale !== undefined ? ` × ${d.attentionValueScale}` : ''}`}; RoPE ${d.ropeScaling}${d.rotaryDim !== undefined ? ` over the ${d.attention === 'mla' ? 'last' : 'first'} ${d.rotaryDim} of each head's ${d.headDim} values` : ''}${d.weightlessQkNormLayers !== undefined ? `; q/k heads RMS-normalised without a weight after RoPE in ${layersText(d.weightlessQkNormLayers, d.numLayers)}` : ''}${d.llama4QueryScale !== undefined ? `; queries × 1 + ${d.llama4QueryScale.beta}·ln(1 + ⌊${d.llama4QueryScale.positionOffset ? `(position + ${d.llama4QueryScale.positionOffset})` : 'position'} / ${d.llama4QueryScale.originalMaxPositions}⌋)${d.llama4QueryScale.layers !== undefined ? ` in ${layersText(d.llama4QueryScale.layers, d.numLayers)}` : ''}` : ''}${d.attentionSinks ? `; a sink logit per head${d.sinkLayers !== undefined ? ` in ${layersText(d.sinkLayers, d.numLayers)}` : ''}` : ''}${d.attentionOutputGate ? '; the heads\' output gated by sigmoid(gate_proj) of the input' : ''}${d.queryGate ? '; the heads\' output gated by sigmoid of a gate q_proj emits beside each query' : ''}${d.slidingWindow !== undefined ? `; a sliding window of ${d.slidingWindow.size} positions in ${d.slidingWindow.layers.length === d.numLayers ? 'every layer' : `layers ${d.slidingWindow.layers.join(', ')}`}` : ''}${d.attentionChunk !== undefined ? `; attention within chunks of ${d.attentionChunk.size} positions in ${layersText(d.attentionChunk.layers, d.numLayers)}` : ''}${d.nopeLayers !== undefined ? `; no RoPE in ${d.nopeLayers.length === d.numLayers ? 'any layer' : `layers ${d.nopeLayers.join(', ')}`}` : ''}${d.layerRopeThetas !== undefined ? `; RoPE bases by layer ${d.layerRopeThetas.join(', ')}` : ''}${d.sparseAttention !== undefined ? `; DeepSeek Sparse Attention (top ${d.sparseAttention.indexTopK} positions, indexers in ${d.sparseAttention.indexerLayers.length === d.numLayers ? 'every layer' : `layers ${d.sparseAttention.indexerLayers.join(', ')}`})` : ''}${d.runnable ? '' : ' (not implemented: the model can be inspected and compressed from statistics, not run)'}`],
      ...(d.linearAttention
        ? [['linear attention', `Gated DeltaNet in ${layersText(d.linearAttention.layers, d.numLayers)} (the others attend): ${d.linearAttention.numKeyHeads} key heads of ${d.linearAttention.keyHeadDim}, ${d.linearAttention.numValueHeads} value heads of ${d.linearAttention.valueHeadDim}, a causal conv of ${d.linearAttention.convKernel}`] as [string, string]]
        : []),
      ...(d.zeroCentredNorms ? [['norm weights', 'zero-centred: RMS norms multiply by 1 + weight'] as [string, string]] : []),
      ['hidden / vocab', `${d.hiddenSize} / ${d.vocabSize}${d.tieWordEmbeddings ? ' (tied embeddings)' : ''}${d.lmHeadBias ? ' (lm_head with a bias)' : ''}`],
      ['layers', `${d.numLayers}: MoE ${list(d.moeLayers)}; dense ${list(d.denseLayers)}${d.denseLayers.length > 0 ? ` (width ${d.denseIntermediateSize})` : ''}`],
      ...(d.norms || d.normKind ? [['norms', normsText(d.norms, d.normKind, d.parallelBlock === true)] as [string, string]] : []),
      ['experts', experts],
      ...(d.multipliers ? [['multipliers', multipliersText(d.multipliers)] as [string, string]] : []),
      ['expert shapes', `gate ${shape(d.expertShapes.gate)}  up ${shape(d.expertShapes.up)}  down ${shape(d.expertShapes.down)}  (${d.expertStorage} on disk)`],
      ['dtypes', Object.entries(d.dtypes).map(([k, v]) => `${k} × ${v} tensors`).join(', ')],
      ...(d.fp8Blocks
        ? [
            [
              'quantization',
              `${d.fp8Blocks.method === 'fp8' ? 'block FP8' : 'FP8, compressed-tensors'} (${d.fp8Blocks.block ? `${d.fp8Blocks.block[0]}×${d.fp8Blocks.block[1]} blocks` : 'scales per tensor, channel or group, read off each grid'}); routed experts of E4M3 codes are kept as stored where weights are (generate, serve), everything else dequantised to BF16 as read`,
            ] as [string, string],
          ]
        : []),
      ...(d.mxfp4 ? [['quantization', 'MXFP4 (…_blocks of FP4 codes with …_scales, one exponent per 32 values); experts stored transposed (gpt-oss\'s) are kept as stored where weights are (generate, serve), and otherwise dequantised to BF16 as read'] as [string, string]] : []),
      ['shards', `${d.shardCount} (${d.files.join(', ')})`],
    ]),
    '',
    'parameters',
    table(rightAlignColumns([
      ['  total', int(p.total), pct(p.total)],
      ['  routed experts', int(p.experts), pct(p.experts)],
      ['    gate + up', int(p.routedGateUp), pct(p.routedGateUp)],
      ['    down', int(p.routedDown), pct(p.routedDown)],
      ['  shared experts', int(p.sharedExperts), pct(p.sharedExperts)],
      ['  routers', int(p.routers), pct(p.routers)],
      ['  attention', int(p.attention), pct(p.attention)],
      ['  dense MLPs', int(p.denseMlp), pct(p.denseMlp)],
      ['  embeddings', int(p.embeddings), pct(p.embeddings)],
      ['  lm_head', int(p.lmHead), pct(p.lmHead)],
      ['  norms', int(p.norms), pct(p.norms)],
      ['  other', int(p.other), pct(p.other)],
    ], [1, 2])),
    '',
    `validation: OK, ${d.validation.tensorsChecked} tensors match config.json` +
      (d.validation.unusedTensors.length > 0 ? `; ${d.validation.unusedTensors.length} unused tensor(s): ${d.validation.unusedTensors.slice(0, 5).join(', ')}` : ''),
  ];
  return lines.join('\n');
}

export function formatSafetensorsFile(d: SafetensorsFileDescription): string {
  const meta = d.metadata === null ? 'none' : Object.entries(d.metadata).map(([k, v]) => `${k}=${v}`).join(', ') || '{}';
  const rows = [['name', 'dtype', 'shape', 'bytes [begin, end)'], ...d.tensors.map((t) => [t.name, t.dtype, shape(t.shape), `[${t.dataOffsets[0]}, ${t.dataOffsets[1]})`])];
  return [
    `file: ${d.file} (${int(d.fileSize)} bytes; header ${int(d.headerLength)} bytes; data starts at byte ${d.dataStart})`,
    `metadata: ${meta}`,
    `tensors: ${d.tensorCount}, parameters: ${int(d.parameterCount)}`,
    '',
    table(rows),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------

export function formatCompressed(d: CompressedDescription): string {
  const mb = (n: number) => (n < 1e6 ? `${(n / 1e3).toFixed(1)} KB` : n < 1e9 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e9).toFixed(2)} GB`);
  const rows: string[][] = [['layer', 'type', 'groups', 'ranks', 'residual q', 'stored', 'original', 'ratio', 'structure']];
  for (const l of d.layers) {
    for (const [type, t] of Object.entries(l.types)) {
      if (!t) continue;
      const residuals = [...new Set(t.groups.map((g) => (g.residualLength === null ? '-' : String(g.residualLength))))].join('/');
      rows.push([
        String(l.layer),
        type,
        `${t.groups.length} × ${t.groups.map((g) => g.experts.length).join('/')}`,
        t.groups.map((g) => g.rank).join(', '),
        residuals,
        mb(t.storedBytes),
        mb(t.originalBytes),
        (t.storedBytes / t.originalBytes).toFixed(3),
        t.structure,
      ]);
    }
    rows.push([String(l.layer), 'all tensors', '', '', '', mb(l.layerBytes), '', '', '']);
  }
  const aligned = rightAlignColumns(rows, [5, 6, 7]);
  return [
    table([
      ['compressed model', d.dir],
      ['made by', `${d.tool}, ${d.storage} storage (${d.factorDtype} factors), types ${d.matrixTypes.join(', ')}`],
      ['family', `${d.family} (model_type ${d.modelType}), ${d.numLayers} layers, ${d.numExperts} experts per MoE layer`],
      ['recipe', JSON.stringify(d.recipe)],
      ['calibration', `${d.calibration.source}: ${d.calibration.description}`],
      ['size', `${mb(d.totalBytes)} of tensors`],
      ['files', d.files.verified ? `${d.files.recorded} files: sha256 verified` : `${d.files.recorded} files with recorded sha256, not checked (pass --verify)`],
    ]),
    '',
    table(aligned),
  ].join('\n');
}

async function inspectCompressed(dir: string, json: boolean, verify: boolean): Promise<void> {
  const model = await loadCompressed(dir, { verifyHashes: verify, ...(verify && !json ? { onVerifyProgress: stderrHashProgress() } : {}) });
  try {
    const d = describeCompressed(model, verify);
    process.stdout.write((json ? JSON.stringify({ ok: true, type: 'compressed', ...d }) : formatCompressed(d)) + '\n');
  } finally {
    await model.close();
  }
}

async function inspect(target: string, json: boolean, verify: boolean): Promise<void> {
  let info;
  try {
    info = await stat(target);
  } catch {
    throw new CheckpointError('NotFound', `${target} does not exist; pass a checkpoint directory or a .safetensors file`);
  }
  if (info.isDirectory()) {
    const unfinished = await unfinishedRun(target);
    if (unfinished) throw unfinished;
    if (await isCompressedDir(target)) return inspectCompressed(target, json, verify);
    if (verify) throw new OptionError(`--verify checks the sha256 recorded by rfid-moe compress; ${target} is not an rfid-moe output and records none`);
    const d = await describeCheckpointDir(target);
    process.stdout.write((json ? JSON.stringify({ ok: true, type: 'checkpoint', ...d }) : formatCheckpoint(d)) + '\n');
  } else {
    const d = await describeSafetensorsFile(target);
    process.stdout.write((json ? JSON.stringify({ ok: true, type: 'safetensors-file', ...d }) : formatSafetensorsFile(d)) + '\n');
  }
}

export function register(program: Command): void {
  program
    .command('inspect')
    .description('summarise a checkpoint directory (family, MoE layers, experts, parameter counts, validation) or list the tensors of one .safetensors file')
    .argument('<path>', 'checkpoint directory (config.json + *.safetensors) or a single .safetensors file')
    .option('--json', 'print one JSON object instead of tables', false)
    .option('--verify', 'for an rfid-moe output: check every file against the sha256 recorded in its config.json', false)
    .action(async (target: string, opts: { json: boolean; verify: boolean }) => inspect(target, opts.json, opts.verify));
}
