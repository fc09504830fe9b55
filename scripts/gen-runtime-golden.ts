/**
 * Regenerates every golden file under test/golden/runtime/ with one command:
 *
 *   node --import tsx scripts/gen-runtime-golden.ts
 *
 * 1. /usr/bin/python3 scripts/gen-runtime-golden.py: the tiny per-family checkpoints and the
 *    PyTorch reference's logits, routing counts and Gram matrices (families.json).
 * 2. The perplexity golden: a mixtral fixture with the GPT-2 vocabulary (test/helpers/fixtures.ts,
 *    fixed seed), WikiText-2 test tokenized here (no tokenizer exists in Debian's python), the
 *    ids handed to scripts/torch_reference.py, its perplexity written to perplexity.json together
 *    with the sha256 of the fixture's weights (the test refuses to compare if they changed).
 * 3. The transformers golden: the same fixtures run through Hugging Face transformers itself
 *    (scripts/hf_reference.py, AutoModelForCausalLM in f32) on the same padded batch, into
 *    transformers.json; fixtures whose model_type transformers does not ship are listed there
 *    with transformers' own error. Needs Python with torch + transformers ($RFID_MOE_PYTHON or
 *    .venv/bin/python). `--transformers-only` regenerates just this file.
 * Needs the test data folder named by RFID_MOE_DATA (WikiText-2, GPT-2 tokenizer) and Debian's python3-torch.
 */
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { makeTinyCheckpoint } from '../test/helpers/fixtures.js';
import { repoRoot, sharedPath } from '../test/helpers/shared-data.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { tokenizeDataset } from '../src/tokens/prepare.js';

export const PPL_FIXTURE = {
  family: 'mixtral' as const,
  options: { seed: 20260, vocabSize: 50257, hiddenSize: 16, expertIntermediateSize: 16, numLayers: 2, numExperts: 8, topK: 2 },
  seqLen: 128,
  maxWindows: 32,
};

/** sha256 over the checkpoint's safetensors files, in name order */
export function weightsSha256(dir: string): string {
  const hash = createHash('sha256');
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.safetensors')).sort()) hash.update(readFileSync(path.join(dir, f)));
  return hash.digest('hex');
}

/** Logits of every fixture of families.json, computed by transformers, into transformers.json. */
async function transformersGolden(golden: string): Promise<void> {
  const python = process.env.RFID_MOE_PYTHON ?? path.join(repoRoot, '.venv', 'bin', 'python');
  const families = JSON.parse(readFileSync(path.join(golden, 'families.json'), 'utf8')) as { ids: number[][]; mask: number[][]; cases: Array<{ name: string; family: string }> };
  const jobs = families.cases.map((c) => ({ op: 'logits', model: path.join(golden, c.name), ids: families.ids, mask: families.mask }));
  const out = execFileSync(python, [path.join(repoRoot, 'scripts', 'hf_reference.py')], {
    input: JSON.stringify({ jobs }),
    encoding: 'utf8',
    maxBuffer: 1 << 26,
    env: { ...process.env, HF_HUB_OFFLINE: '1', HF_HUB_DISABLE_PROGRESS_BARS: '1' },
  });
  const run = JSON.parse(out) as { transformers: string; torch: string; results: Array<{ ok: boolean; logits?: number[][]; error?: string; loading?: unknown }> };
  const doc = {
    generator: `scripts/gen-runtime-golden.ts + scripts/hf_reference.py (transformers ${run.transformers}, torch ${run.torch}, AutoModelForCausalLM, float32)`,
    ids: families.ids,
    mask: families.mask,
    cases: families.cases.flatMap((c, i) => {
      const r = run.results[i];
      return r.ok ? [{ name: c.name, family: c.family, loading: r.loading, logits: r.logits!.map((row) => row.map((x) => Number(x.toPrecision(8)))) }] : [];
    }),
    unsupported: families.cases.flatMap((c, i) => (run.results[i].ok ? [] : [{ name: c.name, family: c.family, error: run.results[i].error!.split('\n')[0] }])),
  };
  await writeFileAtomic(path.join(golden, 'transformers.json'), JSON.stringify(doc) + '\n');
  process.stderr.write(`transformers golden: ${doc.cases.length} case(s), unsupported: ${doc.unsupported.map((u) => u.name).join(', ') || 'none'}\n`);
}

async function main(): Promise<void> {
  const python = '/usr/bin/python3';
  const golden = path.join(repoRoot, 'test', 'golden', 'runtime');
  if (process.argv.includes('--transformers-only')) return transformersGolden(golden);
  execFileSync(python, [path.join(repoRoot, 'scripts', 'gen-runtime-golden.py')], { stdio: 'inherit' });

  const work = mkdtempSync(path.join(tmpdir(), 'rfid-ppl-golden-'));
  try {
    const model = path.join(work, 'model');
    await makeTinyCheckpoint(model, PPL_FIXTURE.family, PPL_FIXTURE.options);
    const data = await tokenizeDataset(sharedPath('gpt2-tokenizer', 'tokenizer.json'), sharedPath('wikitext-2-raw', 'wiki.test.raw'));
    const idsFile = path.join(work, 'ids.i32');
    writeFileSync(idsFile, new Uint8Array(data.ids.buffer, data.ids.byteOffset, data.ids.byteLength));
    const out = execFileSync(
      python,
      [path.join(repoRoot, 'scripts', 'torch_reference.py'), 'ppl', '--model', model, '--ids', idsFile, '--seq-len', String(PPL_FIXTURE.seqLen), '--max-windows', String(PPL_FIXTURE.maxWindows)],
      { encoding: 'utf8', maxBuffer: 1 << 20 },
    );
    const result = JSON.parse(out) as { windows: number; tokens: number; meanNll: number; perplexity: number };
    const doc = {
      generator: 'scripts/gen-runtime-golden.ts + scripts/torch_reference.py ppl',
      dataset: { file: 'wikitext-2-raw/wiki.test.raw', format: 'wikitext', sha256: data.dataset.sha256, tokens: data.ids.length },
      fixture: { ...PPL_FIXTURE, weightsSha256: weightsSha256(model) },
      torch: result,
    };
    await writeFileAtomic(path.join(golden, 'perplexity.json'), JSON.stringify(doc, null, 1) + '\n');
    process.stderr.write(`perplexity golden: ${result.perplexity} over ${result.tokens} tokens\n`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
  await transformersGolden(golden);
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
