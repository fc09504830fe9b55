/**
 * Perplexity of a checkpoint on WikiText-2 test and PTB test with the library API, by the
 * protocol of docs/method.md (text joined and tokenized once without BOS, consecutive
 * non-overlapping windows, mean NLL over every predicted token).
 *
 *   node --import tsx examples/perplexity.ts <model-dir> [--seq-len 2048] [--max-windows N]
 *        [--tokenizer path/to/tokenizer.json] [--engine auto|native|ts]
 *
 * Data comes from ../shared/data (or $RFID_MOE_DATA): wikitext-2-raw/wiki.test.raw (WikiText rows)
 * and ptb/ptb.test.txt (plain text). PTB is LDC text: keep its numbers out of published artifacts.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openCheckpoint } from '../src/checkpoint/open.js';
import { createEngine, parseEngineChoice } from '../src/engine/index.js';
import { computePerplexity } from '../src/eval/index.js';
import { evaluationWindows, tokenizeDataset, type DatasetFormat } from '../src/tokens/index.js';

const dataDir = process.env.RFID_MOE_DATA ?? path.resolve(import.meta.dirname, '..', '..', 'shared', 'data');
const DATASETS: { name: string; file: string; format: DatasetFormat }[] = [
  { name: 'WikiText-2 test', file: path.join(dataDir, 'wikitext-2-raw', 'wiki.test.raw'), format: 'wikitext' },
  { name: 'PTB test', file: path.join(dataDir, 'ptb', 'ptb.test.txt'), format: 'text' },
];

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'seq-len': { type: 'string', default: '2048' },
    'max-windows': { type: 'string' },
    tokenizer: { type: 'string' },
    engine: { type: 'string', default: 'auto' },
  },
});
const modelDir = positionals[0];
if (!modelDir) {
  process.stderr.write('usage: node --import tsx examples/perplexity.ts <model-dir> [--seq-len 2048] [--max-windows N] [--tokenizer file] [--engine auto]\n');
  process.exit(2);
}
const seqLen = Number(values['seq-len']);
const maxWindows = values['max-windows'] === undefined ? undefined : Number(values['max-windows']);

const ckpt = await openCheckpoint(modelDir);
const { engine, notice } = await createEngine(parseEngineChoice(values.engine ?? 'auto'));
process.stderr.write(notice + '\n');
try {
  for (const ds of DATASETS) {
    const data = await tokenizeDataset(values.tokenizer ?? modelDir, ds.file, { format: ds.format });
    const windows = evaluationWindows(data.ids, seqLen, maxWindows);
    const started = Date.now();
    const r = await computePerplexity(ckpt, engine, windows);
    process.stdout.write(
      `${ds.name}: perplexity ${r.perplexity.toFixed(4)} over ${r.tokens} predicted tokens ` +
        `(${r.windows} windows of ${seqLen}; dataset ${data.ids.length} tokens) in ${((Date.now() - started) / 1000).toFixed(1)} s\n`,
    );
  }
} finally {
  engine.dispose();
  await ckpt.close();
}
