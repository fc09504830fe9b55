/**
 * A quality check's wall time: lm-evaluation-harness through `rfid-moe serve` (its
 * local-completions model) against lm-eval's own `hf` model (transformers, float32, CPU) on the
 * same checkpoint, the same tasks and the same windows, in one run (scripts/lm_eval_check.py:
 * rolling perplexity over paragraphs, multiple choice, greedy generation).
 *
 *   node --import tsx bench/lm-eval-vs-hf.ts [--model DIR | --synthetic [--shape mixtral|qwen3-30b-a3b|deepseek-v2-lite]]
 *        --text FILE [--documents 24] [--max-length 512] [--threads 2] [--hf-batch-size 8]
 *        [--api-batch-size 4] [--concurrent 2] [--python .venv/bin/python]
 *
 * --text: any plain text; its paragraphs are the documents. --synthetic generates a checkpoint of
 * bench/lib/synthetic-shapes.ts (random weights) with the demo model's tokenizer copied beside it
 * and its context set to --max-length.
 * Both sides get --threads: the engine's threads, and torch's (OMP_NUM_THREADS). The server's
 * model is loaded before the clock starts; hf's time includes loading its model from disk (a
 * second or two at these sizes).
 *
 * Prints one JSON line: seconds per backend, the ratio, and the largest difference of a
 * document's score between the two (they must agree: the same windows on the same weights).
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { createEngine, parseEngineChoice } from '../src/engine/index.js';
import { createServer } from '../src/serve/server.js';
import { shapeNamed } from './lib/synthetic-shapes.js';
import { runLmEvalCheck, type LmEvalJob } from '../test/helpers/lm-eval.js';

const root = path.join(import.meta.dirname, '..');
const venv = path.join(root, '.venv', 'bin', 'python');
const demo = path.join(root, 'examples', 'models', 'mixtral-tiny-shakespeare');
const { values } = parseArgs({
  options: {
    model: { type: 'string', default: demo },
    synthetic: { type: 'boolean', default: false },
    shape: { type: 'string', default: 'mixtral' },
    text: { type: 'string' },
    documents: { type: 'string', default: '24' },
    'max-length': { type: 'string', default: '512' },
    threads: { type: 'string', default: '2' },
    engine: { type: 'string', default: 'native' },
    'hf-batch-size': { type: 'string', default: '8' },
    'api-batch-size': { type: 'string', default: '4' },
    concurrent: { type: 'string', default: '2' },
    python: { type: 'string', default: existsSync(venv) ? venv : 'python3' },
  },
});
if (!values.text) throw new Error('--text FILE is required: a plain-text file whose paragraphs are the documents');
const threads = Number(values.threads);
const work = mkdtempSync(path.join(tmpdir(), 'rfid-bench-lm-eval-'));

try {
  let modelDir = path.resolve(values.model!);
  let label = path.relative(root, modelDir);
  if (values.synthetic) {
    const shape = shapeNamed(values.shape);
    modelDir = path.join(work, `synthetic-${values.shape}`);
    // the generated config's context (256 positions) is shorter than any real model's
    await shape.make(modelDir, { context: Math.max(256, Number(values['max-length'])) });
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(path.join(demo, f), path.join(modelDir, f));
    label = shape.label;
  }

  const { engine } = await createEngine(parseEngineChoice(values.engine!), { threads });
  const server = await createServer({ models: [`bench=${modelDir}`], engine, processMetrics: false });
  const url = await server.listen({ port: 0, host: '127.0.0.1' });
  // load the model before the clock starts (a served model is resident when a user evaluates it)
  await fetch(`${url}/v1/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'bench', prompt: 'a', max_tokens: 1 }) });

  const job: LmEvalJob = {
    base_url: `${url}/v1/completions`,
    model: 'bench',
    model_dir: modelDir,
    text_file: path.resolve(values.text),
    max_length: Number(values['max-length']),
    backends: ['hf', 'api'],
    documents: Number(values.documents),
    hf_batch_size: Number(values['hf-batch-size']),
    api_batch_size: Number(values['api-batch-size']),
    num_concurrent: Number(values.concurrent),
  };
  const check = await runLmEvalCheck(values.python!, job, { env: { OMP_NUM_THREADS: String(threads) }, inheritStderr: true });
  await server.close();
  engine.dispose();

  const hf = check.runs.hf;
  const api = check.runs.api;
  let maxDiff = 0;
  for (const [task, docs] of Object.entries(hf.samples)) {
    if (task === 'rfid_generate') continue;
    docs.forEach((d, i) => {
      const flat = (r: unknown[]): number[] => r.map((x) => (Array.isArray(x) ? (x[0] as number) : (x as number)));
      const a = flat(d.resps);
      const b = flat(api.samples[task][i].resps);
      a.forEach((v, j) => (maxDiff = Math.max(maxDiff, Math.abs(v - b[j]))));
    });
  }
  const sameGenerations = JSON.stringify(hf.samples.rfid_generate) === JSON.stringify(api.samples.rfid_generate);
  console.log(
    JSON.stringify({
      model: label,
      lmEval: check.lm_eval,
      threads,
      documents: job.documents,
      maxLength: job.max_length,
      scoredTokens: check.rolling_tokens.reduce((s, n) => s + n, 0),
      hfSeconds: round(hf.seconds),
      serverSeconds: round(api.seconds),
      hfOverServer: round(hf.seconds / api.seconds),
      maxScoreDifference: maxDiff,
      sameGenerations,
      wordPerplexity: { hf: hf.results.rfid_rolling.word_perplexity, server: api.results.rfid_rolling.word_perplexity },
    }),
  );
} finally {
  rmSync(work, { recursive: true, force: true });
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
