/**
 * Generated checkpoints shaped like real MoE models at a size this machine runs, for benchmarks
 * that compare rfid-moe with a peer on more than the tiny demo models (random weights: speed, not
 * quality).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { makeTinyCheckpoint as makeFixture } from '../../test/helpers/fixtures.js';

/** Float fields transformers 5 validates strictly (a float-typed field refuses the int 0). */
const FLOAT_FIELDS = ['router_jitter_noise', 'attention_dropout', 'rms_norm_eps', 'rope_theta', 'router_aux_loss_coef', 'routed_scaling_factor'];

export interface ShapeOptions {
  /** max_position_embeddings (default the fixture's 256); the weights do not depend on it */
  context?: number;
}

/**
 * The fixture's checkpoint, with its config.json loadable by transformers itself: JSON.stringify
 * writes 0.0 as 0, so integral values of float fields get their ".0" back in the text.
 */
async function makeTinyCheckpoint(dir: string, family: Parameters<typeof makeFixture>[1], dims: Parameters<typeof makeFixture>[2], opts: ShapeOptions): Promise<void> {
  await makeFixture(dir, family, dims);
  const file = path.join(dir, 'config.json');
  let text = readFileSync(file, 'utf8');
  for (const key of FLOAT_FIELDS) text = text.replace(new RegExp(`("${key}":\\s*)(-?\\d+)(?=\\s*[,}\\n])`), '$1$2.0');
  if (opts.context !== undefined) text = text.replace(/("max_position_embeddings":\s*)\d+/, `$1${opts.context}`);
  writeFileSync(file, text);
}

export const SHAPES = {
  mixtral: {
    label: 'synthetic mixtral (hidden 512, expert width 1408, 4 layers, 8 experts, vocab 32000)',
    make: (dir: string, opts: ShapeOptions = {}) =>
      makeTinyCheckpoint(dir, 'mixtral', { seed: 1, hiddenSize: 512, numHeads: 8, numKvHeads: 2, expertIntermediateSize: 1408, numLayers: 4, numExperts: 8, topK: 2, vocabSize: 32000, dtype: 'BF16' }, opts),
  },
  'qwen3-30b-a3b': {
    label: 'synthetic Qwen3-30B-A3B proportions (qwen3_moe, hidden 512, 8 q heads / 1 kv head of 128, 4 layers, 64 experts of width 384, top-4, vocab 4096)',
    make: (dir: string, opts: ShapeOptions = {}) =>
      makeTinyCheckpoint(dir, 'qwen3_moe', {
        seed: 1,
        hiddenSize: 512,
        numHeads: 8,
        numKvHeads: 1,
        headDim: 128,
        expertIntermediateSize: 384,
        numLayers: 4,
        numExperts: 64,
        topK: 4,
        normTopkProb: true,
        vocabSize: 4096,
        dtype: 'BF16',
      }, opts),
  },
  'deepseek-v2-lite': {
    label: 'synthetic DeepSeek-V2-Lite proportions (deepseek_v2, hidden 512, 4 heads with its MLA widths: kv_lora 512, nope 128, rope 64, v 128; 4 layers, the first dense; 64 experts of width 352, top-6, 2 shared; vocab 4096)',
    make: (dir: string, opts: ShapeOptions = {}) =>
      makeTinyCheckpoint(dir, 'deepseek_v2', {
        seed: 1,
        hiddenSize: 512,
        numHeads: 4,
        mla: { kvLoraRank: 512, nope: 128, rope: 64, v: 128 },
        expertIntermediateSize: 352,
        denseIntermediateSize: 2736,
        numSharedExperts: 2,
        numLayers: 4,
        numExperts: 64,
        topK: 6,
        vocabSize: 4096,
        dtype: 'BF16',
      }, opts),
  },
  'glm-4.5-air': {
    label: 'synthetic GLM-4.5-Air proportions (glm4_moe, hidden 512, 12 q heads / 1 kv head of 128 with RoPE over 64, q/k/v biases, 4 layers, the first dense; 64 experts of width 176, top-4, 1 shared; vocab 4096)',
    make: (dir: string, opts: ShapeOptions = {}) =>
      makeTinyCheckpoint(dir, 'glm4_moe', {
        seed: 1,
        hiddenSize: 512,
        numHeads: 12,
        numKvHeads: 1,
        headDim: 128,
        partialRotaryFactor: 0.5,
        useQkNorm: false,
        routedScalingFactor: 1,
        expertIntermediateSize: 176,
        denseIntermediateSize: 1368,
        numSharedExperts: 1,
        numLayers: 4,
        numExperts: 64,
        topK: 4,
        vocabSize: 4096,
        dtype: 'BF16',
      }, opts),
  },
  'granite-3.0-1b-a400m': {
    label: "synthetic granite-3.0-1b-a400m at its full size (granitemoe, hidden 1024, 16 q heads / 8 kv heads of 64, 24 layers, 32 experts of width 512, top-8, tied embeddings, vocab 49155, its multipliers)",
    make: (dir: string, opts: ShapeOptions = {}) =>
      makeTinyCheckpoint(dir, 'granitemoe', {
        seed: 1,
        hiddenSize: 1024,
        numHeads: 16,
        numKvHeads: 8,
        expertIntermediateSize: 512,
        numLayers: 24,
        numExperts: 32,
        topK: 8,
        vocabSize: 49155,
        tieWordEmbeddings: true,
        multipliers: { embedding: 12, residual: 0.22, attention: 0.015625, logits: 6 },
        dtype: 'BF16',
      }, opts),
  },
  'gpt-oss-20b': {
    label: 'synthetic gpt-oss-20b proportions (gpt_oss, hidden 512, 8 q heads / 1 kv head of 64 with sinks, q/k/v/o biases, window 128 on every other layer, YaRN; 4 layers, 32 experts of width 512 with biases, top-4; vocab 4096)',
    make: (dir: string, opts: ShapeOptions = {}) =>
      makeTinyCheckpoint(dir, 'gpt_oss', {
        seed: 1,
        hiddenSize: 512,
        numHeads: 8,
        numKvHeads: 1,
        headDim: 64,
        expertIntermediateSize: 512,
        numLayers: 4,
        numExperts: 32,
        topK: 4,
        vocabSize: 4096,
        // gpt-oss-20b's own: a window of 128, YaRN ×32 over an original context of 4096
        configKeys: { sliding_window: 128 },
        ropeScaling: { rope_type: 'yarn', factor: 32.0, beta_fast: 32.0, beta_slow: 1.0, original_max_position_embeddings: 4096, truncate: false },
        dtype: 'BF16',
      }, opts),
  },
} as const;

/** The shape of a --shape argument; throws naming the choices. */
export function shapeNamed(name: string | undefined): (typeof SHAPES)[keyof typeof SHAPES] {
  const shape = SHAPES[name as keyof typeof SHAPES];
  if (!shape) throw new Error(`--shape must be one of ${Object.keys(SHAPES).join(', ')}; got "${name}"`);
  return shape;
}
