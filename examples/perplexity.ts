/**
 * Original vs compressed perplexity with the library API, by the protocol of docs/method.md (text
 * joined and tokenized once without BOS, consecutive non-overlapping windows, mean NLL over every
 * predicted token). The first model is the reference; every other one (e.g. `rfid-moe compress`
 * outputs, factored or dense) is reported with its difference to it.
 *
 *   node --import tsx examples/perplexity.ts <original-dir> [<compressed-dir> ...]
 *        (--dataset file.txt | --data <dir>) [--seq-len L] [--max-windows N] [--engine auto|native|ts]
 *
 * e.g., after the README's main command:
 *   node --import tsx examples/perplexity.ts examples/models/mixtral-tiny-shakespeare out/demo --dataset wiki.test.raw --seq-len 256
 *
 * The text comes from the arguments: `--dataset FILE` (plain text, .jsonl or WikiText .raw), or
 * `--data DIR` for WikiText-2 test (DIR/wikitext-2-raw/wiki.test.raw) and PTB test
 * (DIR/ptb/ptb.test.txt), whichever of the two is present. The tokenizer is the first model's. The window length defaults to
 * 2048 or the model's max_position_embeddings when shorter (the demo model was trained at 256).
 * PTB is LDC text: keep its numbers out of published artifacts of your own.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openModel } from '../src/compressed/index.js';
import { createEngine, parseEngineChoice } from '../src/engine/index.js';
import { checkEvalSeqLen, computePerplexity, defaultEvalSeqLen } from '../src/eval/index.js';
import { evaluationWindows, tokenizeDataset, type DatasetFormat } from '../src/tokens/index.js';

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    dataset: { type: 'string' },
    data: { type: 'string' },
    'seq-len': { type: 'string' },
    'max-windows': { type: 'string' },
    engine: { type: 'string', default: 'auto' },
  },
});
const USAGE = 'usage: node --import tsx examples/perplexity.ts <original-dir> [<compressed-dir> ...] (--dataset <file> | --data <dir>) [--seq-len L] [--max-windows N] [--engine auto]\n';
if (positionals.length === 0 || (values.dataset === undefined && values.data === undefined)) {
  process.stderr.write(`perplexity: ${positionals.length === 0 ? 'no model given' : 'no text given: pass --dataset <file> or --data <dir>'}\n${USAGE}`);
  process.exit(2);
}
const dataDir = values.data === undefined ? undefined : path.resolve(values.data);

const datasets: { name: string; file: string; format: DatasetFormat | 'auto' }[] = values.dataset
  ? [{ name: path.basename(values.dataset), file: values.dataset, format: 'auto' }]
  : [
      { name: 'WikiText-2 test', file: path.join(dataDir!, 'wikitext-2-raw', 'wiki.test.raw'), format: 'wikitext' as const },
      { name: 'PTB test', file: path.join(dataDir!, 'ptb', 'ptb.test.txt'), format: 'text' as const },
    ].filter((d) => existsSync(d.file));
if (datasets.length === 0) {
  process.stderr.write(`perplexity: neither wikitext-2-raw/wiki.test.raw nor ptb/ptb.test.txt is under ${dataDir}\n${USAGE}`);
  process.exit(2);
}

const models = await Promise.all(positionals.map((dir) => openModel(dir)));
const seqLen = values['seq-len'] === undefined ? defaultEvalSeqLen(models[0].config) : Number(values['seq-len']);
for (const m of models) checkEvalSeqLen(m.config, seqLen);
const maxWindows = values['max-windows'] === undefined ? undefined : Number(values['max-windows']);
const { engine, notice } = await createEngine(parseEngineChoice(values.engine ?? 'auto'));
process.stderr.write(notice + '\n');

try {
  const rows: string[] = ['| dataset | model | perplexity | vs original | tokens | seconds |', '|---|---|---:|---:|---:|---:|'];
  for (const ds of datasets) {
    const data = await tokenizeDataset(positionals[0], ds.file, { format: ds.format });
    const windows = evaluationWindows(data.ids, seqLen, maxWindows);
    let original: number | undefined;
    for (let i = 0; i < models.length; i++) {
      const started = Date.now();
      const r = await computePerplexity(models[i], engine, windows);
      original ??= r.perplexity;
      const delta = i === 0 ? '—' : `${(((r.perplexity - original) / original) * 100).toFixed(2)}%`;
      rows.push(`| ${ds.name} | ${positionals[i]} | ${r.perplexity.toFixed(3)} | ${delta} | ${r.tokens} | ${((Date.now() - started) / 1000).toFixed(1)} |`);
      process.stderr.write(`${ds.name}, ${positionals[i]}: perplexity ${r.perplexity.toFixed(3)} (${r.windows} windows of ${seqLen})\n`);
    }
  }
  process.stdout.write(rows.join('\n') + '\n');
} finally {
  engine.dispose();
  await Promise.all(models.map((m) => m.close()));
}
