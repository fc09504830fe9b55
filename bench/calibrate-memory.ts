/**
 * Peak memory of calibration on a checkpoint larger than comfortable: generates a multi-GB
 * Mixtral-layout BF16 checkpoint (streamed to disk tensor by tensor with ShardedWriter, never
 * whole in memory), calibrates a few windows in a child process, and compares the child's peak
 * RSS with the largest decoder layer's size on disk. Budget: 3 × largest layer +
 * activations + 500 MB.
 *
 *   node --import tsx bench/calibrate-memory.ts [--hidden 2048] [--width 5632] [--layers 4]
 *        [--experts 8] [--samples 4] [--seq-len 256] [--engine native] [--keep DIR]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openCheckpoint } from '../src/checkpoint/open.js';
import { createEngine, parseEngineChoice } from '../src/engine/index.js';
import { ShardedWriter } from '../src/io/sharded.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { collectRoutingCounts } from '../src/routing-stats/index.js';
import { calibrationWindows } from '../src/tokens/windows.js';

const { values } = parseArgs({
  options: {
    hidden: { type: 'string', default: '2048' },
    width: { type: 'string', default: '5632' },
    layers: { type: 'string', default: '4' },
    experts: { type: 'string', default: '8' },
    vocab: { type: 'string', default: '32000' },
    samples: { type: 'string', default: '4' },
    'seq-len': { type: 'string', default: '256' },
    engine: { type: 'string', default: 'native' },
    child: { type: 'string' },
  },
});
const num = (k: keyof typeof values) => Number(values[k]);

/** Pseudo-random values, scaled like an initialised nn.Linear; one buffer per shape, reused. */
const valueCache = new Map<string, Float32Array>();
function values2d(rows: number, cols: number): Float32Array {
  const key = `${rows}x${cols}`;
  let v = valueCache.get(key);
  if (!v) {
    v = new Float32Array(rows * cols);
    let s = (rows * 2654435761 + cols) >>> 0;
    const scale = 1 / Math.sqrt(cols);
    for (let i = 0; i < v.length; i++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      v[i] = ((s / 4294967296) * 2 - 1) * scale * 1.7;
    }
    valueCache.set(key, v);
  }
  return v;
}

async function generate(dir: string): Promise<void> {
  const H = num('hidden');
  const I = num('width');
  const L = num('layers');
  const E = num('experts');
  const V = num('vocab');
  const heads = H / 128;
  const kvHeads = Math.max(1, heads / 4);
  const config = {
    model_type: 'mixtral', architectures: ['MixtralForCausalLM'], hidden_size: H, intermediate_size: I, num_hidden_layers: L,
    num_attention_heads: heads, num_key_value_heads: kvHeads, num_local_experts: E, num_experts_per_tok: 2, vocab_size: V,
    rms_norm_eps: 1e-5, rope_theta: 1e6, tie_word_embeddings: false, sliding_window: null, torch_dtype: 'bfloat16',
  };
  const tensors: { name: string; shape: number[] }[] = [{ name: 'model.embed_tokens.weight', shape: [V, H] }];
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    tensors.push(
      { name: p + 'input_layernorm.weight', shape: [H] },
      { name: p + 'post_attention_layernorm.weight', shape: [H] },
      { name: p + 'self_attn.q_proj.weight', shape: [H, H] },
      { name: p + 'self_attn.k_proj.weight', shape: [kvHeads * 128, H] },
      { name: p + 'self_attn.v_proj.weight', shape: [kvHeads * 128, H] },
      { name: p + 'self_attn.o_proj.weight', shape: [H, H] },
      { name: p + 'block_sparse_moe.gate.weight', shape: [E, H] },
    );
    for (let e = 0; e < E; e++) {
      const x = `${p}block_sparse_moe.experts.${e}.`;
      tensors.push({ name: x + 'w1.weight', shape: [I, H] }, { name: x + 'w3.weight', shape: [I, H] }, { name: x + 'w2.weight', shape: [H, I] });
    }
  }
  tensors.push({ name: 'model.norm.weight', shape: [H] }, { name: 'lm_head.weight', shape: [V, H] });
  mkdirSync(dir, { recursive: true });
  await writeFileAtomic(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  const writer = await ShardedWriter.create(dir, tensors.map((t) => ({ ...t, dtype: 'BF16' as const })), { maxShardBytes: 1e9 });
  for (const t of tensors) {
    const data = t.shape.length === 1 ? new Float32Array(t.shape[0]).fill(1) : values2d(t.shape[0], t.shape[1]);
    await writer.write(t.name, data);
  }
  await writer.finish();
}

/** Child: calibrate, then report peak RSS and the layer sizes. */
async function child(dir: string): Promise<void> {
  const { engine, notice } = await createEngine(parseEngineChoice(values.engine!));
  const ckpt = await openCheckpoint(dir);
  const rssBefore = process.memoryUsage().rss;
  const seqLen = num('seq-len');
  const corpus = Int32Array.from({ length: 50_000 }, (_, i) => (i * 7919) % ckpt.config.vocabSize);
  const windows = calibrationWindows(corpus, num('samples'), seqLen, 0);
  const t0 = performance.now();
  const counts = await collectRoutingCounts(ckpt, engine, windows);
  const seconds = (performance.now() - t0) / 1000;
  const layerBytes = ckpt.layout.layers.map((l) =>
    ckpt.tensorNames().filter((n) => n.startsWith(`model.layers.${l.index}.`)).reduce((s, n) => s + (ckpt.tensor(n)?.byteLength ?? 0), 0),
  );
  const totalBytes = ckpt.tensorNames().reduce((s, n) => s + (ckpt.tensor(n)?.byteLength ?? 0), 0);
  const tokens = windows.length * seqLen;
  const h = ckpt.config.hiddenSize;
  // residual stream, normed copy, q/k/v/context, MoE output, one expert's gate/up activations, one head's scores
  const activationBytes = tokens * 4 * (6 * h + 2 * ckpt.config.expertIntermediateSize) + seqLen * seqLen * 4;
  process.stdout.write(
    JSON.stringify({
      engine: notice,
      tokens,
      seconds,
      moeLayers: counts.layers.length,
      checkpointBytes: totalBytes,
      largestLayerBytes: Math.max(...layerBytes),
      activationBytes,
      rssBeforeCalibration: rssBefore,
      peakRss: process.resourceUsage().maxRSS * 1024,
    }) + '\n',
  );
  await ckpt.close();
  engine.dispose();
}

if (values.child) await child(values.child);
else {
  const work = mkdtempSync(path.join(tmpdir(), 'rfid-bench-mem-'));
  try {
    const dir = path.join(work, 'model');
    const t0 = performance.now();
    await generate(dir);
    const genSeconds = (performance.now() - t0) / 1000;
    const args = ['--import', 'tsx', import.meta.filename, '--child', dir, ...process.argv.slice(2)];
    const r = JSON.parse(execFileSync(process.execPath, args, { encoding: 'utf8' })) as Record<string, number>;
    const budget = 3 * r.largestLayerBytes + r.activationBytes + 500e6;
    const mb = (b: number) => `${(b / 1e6).toFixed(0)} MB`;
    process.stdout.write(JSON.stringify({ ...r, generateSeconds: genSeconds, budgetBytes: budget, withinBudget: r.peakRss <= budget }) + '\n');
    process.stderr.write(
      `checkpoint ${mb(r.checkpointBytes)} (BF16), largest layer ${mb(r.largestLayerBytes)}; peak RSS ${mb(r.peakRss)} ` +
        `= ${(r.peakRss / r.largestLayerBytes).toFixed(2)}× the largest layer; budget 3×layer + activations ${mb(r.activationBytes)} + 500 MB = ${mb(budget)}: ` +
        `${r.peakRss <= budget ? 'within' : 'OVER'}\n`,
    );
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
