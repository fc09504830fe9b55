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

async function main(): Promise<void> {
  const python = '/usr/bin/python3';
  const golden = path.join(repoRoot, 'test', 'golden', 'runtime');
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
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
