/**
 * Compressing a model from a script (e.g. the end of a training script) with the library API:
 * open the model, build a recipe, call `compress` with a progress handler, then load the result
 * with `loadCompressed` and measure it against the original on a small text.
 *
 *   node --import tsx examples/compress-from-script.ts (--calibration <text file> | --text <text file>)
 *        [--model examples/models/mixtral-tiny-shakespeare] [--out <dir>] [--retain 0.6]
 *        [--samples 32] [--seq-len 256] [--max-windows 8] [--engine auto]
 *
 * The text comes from the arguments:
 * - `--calibration FILE` alone: calibrate on its first 95% and evaluate on the held-out last 5%,
 *   cut as the demo model's trainer cut its files (so with Tiny Shakespeare's input.txt the
 *   evaluation text is one the demo model never saw);
 * - `--calibration FILE --text FILE`: calibrate on the whole first file, evaluate on the second;
 * - `--text FILE` alone: calibrate on sequences sampled from the model itself, evaluate on it.
 * The output goes to a temporary directory unless --out is given (then it is kept).
 */
import { readFileSync, existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { openCheckpoint } from '../src/checkpoint/open.js';
import { compress, parseRecipe, reportSummary, type CompressProgress, type CompressOptions } from '../src/compress/index.js';
import { loadCompressed } from '../src/compressed/load.js';
import { createEngine, parseEngineChoice } from '../src/engine/index.js';
import { compareModels } from '../src/eval/index.js';
import { encodeText, loadTokenizer } from '../src/tokens/tokenizer.js';
import { evaluationWindows } from '../src/tokens/windows.js';
import { splitTrainHeldOut } from './lib/datasets.js';

const repoRoot = path.resolve(import.meta.dirname, '..');
const USAGE =
  'usage: node --import tsx examples/compress-from-script.ts (--calibration <text file> | --text <text file>) ' +
  '[--model <dir>] [--out <dir>] [--retain 0.6] [--samples 32] [--seq-len 256] [--max-windows 8] [--engine auto]\n';

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: path.join(repoRoot, 'examples', 'models', 'mixtral-tiny-shakespeare') },
    out: { type: 'string' },
    retain: { type: 'string', default: '0.6' },
    calibration: { type: 'string' },
    text: { type: 'string' },
    samples: { type: 'string', default: '32' },
    'seq-len': { type: 'string', default: '256' },
    'max-windows': { type: 'string', default: '8' },
    engine: { type: 'string', default: 'auto' },
  },
});

/** One line per event a script would want in its log (the library also offers `stderrProgress()`). */
function onProgress(event: CompressProgress): void {
  switch (event.type) {
    case 'calibration':
      if (event.phase !== 'layer') console.log(`  calibration ${event.phase}: ${event.message}`);
      break;
    case 'layer-start':
      break;
    case 'layer-group':
      console.log(`  layer ${event.layer + 1}/${event.of} ${event.matrixType}: group ${event.group}/${event.groups}`);
      break;
    case 'layer-done':
      console.log(`  layer ${event.layer + 1}/${event.of} done in ${event.seconds.toFixed(2)} s` + (event.etaSeconds !== null ? `, about ${event.etaSeconds.toFixed(0)} s left` : ''));
      break;
    case 'finalize':
    case 'evaluation':
      console.log(`  ${event.type}: ${event.message}`);
      break;
    case 'warning':
      console.log(`  warning: ${event.message}`);
      break;
  }
}

async function main(): Promise<void> {
  const modelDir = path.resolve(values.model!);
  const seqLen = Number(values['seq-len']);
  const samples = Number(values.samples);
  const maxWindows = Number(values['max-windows']);

  // 1. the recipe: RFID-MoE defaults (groups of 4, ξ = 0.8, β = 0.03 tile residual) at γ
  const recipe = parseRecipe({ retain: Number(values.retain) });

  // 2. calibration text and evaluation text, from the arguments
  if (values.calibration === undefined && values.text === undefined) {
    process.stderr.write(`compress-from-script: no text given: pass --calibration and/or --text\n${USAGE}`);
    process.exit(2);
  }
  for (const file of [values.calibration, values.text]) {
    if (file !== undefined && !existsSync(file)) throw new Error(`${file} does not exist`);
  }
  const calibrationFile = values.calibration;
  // without --text: the held-out tail of the calibration file (split as the trainer split it)
  const evalText = values.text ? readFileSync(values.text, 'utf8') : splitTrainHeldOut(readFileSync(calibrationFile!, 'utf8')).heldOut;

  const out = values.out ? path.resolve(values.out) : await mkdtemp(path.join(os.tmpdir(), 'rfid-moe-example-'));
  const work = await mkdtemp(path.join(os.tmpdir(), 'rfid-moe-calib-'));
  const { engine, notice } = await createEngine(parseEngineChoice(values.engine!));
  const original = await openCheckpoint(modelDir);
  console.log(`model ${modelDir} (${original.config.family}, ${original.config.numLayers} layers × ${original.config.numExperts} experts); ${notice}`);
  try {
    const options: CompressOptions = { out, engine, onProgress, evaluation: { sequences: 4 } };
    if (calibrationFile) {
      // calibrate on the training part only, so the evaluation text stays unseen
      const trainPart = path.join(work, 'calibration.txt');
      await writeFile(trainPart, values.text ? readFileSync(calibrationFile, 'utf8') : splitTrainHeldOut(readFileSync(calibrationFile, 'utf8')).train);
      options.dataset = { file: trainPart, samples, seqLen, seed: 0, format: 'text' };
    } else {
      options.selfSampled = { samples, seqLen: Math.min(seqLen, 128), seed: 0 };
    }

    // 3. compress: typed progress events arrive through onProgress
    console.log(`compressing at retain γ = ${recipe.retain} into ${out}`);
    const report = await compress(original, recipe, options);
    console.log(reportSummary(report).trimEnd());

    // 4. load the factored result and compare it with the original on unseen text
    const compressed = await loadCompressed(out);
    try {
      const tokenizer = await loadTokenizer(modelDir);
      const windows = evaluationWindows(encodeText(tokenizer, evalText), seqLen, maxWindows);
      const r = await compareModels(compressed, original, engine, windows);
      console.log(`evaluation on ${windows.length} window(s) of ${seqLen} tokens of ${values.text ?? `the held-out tail of ${calibrationFile}`}:`);
      console.log(`  perplexity original ${r.reference.perplexity.toFixed(4)}, compressed ${r.model.perplexity.toFixed(4)}`);
      console.log(`  mean KL(original ‖ compressed) ${r.comparison.meanKl.toExponential(3)} nats, top-1 agreement ${(100 * r.comparison.top1Agreement).toFixed(2)}%`);
    } finally {
      await compressed.close();
    }
  } finally {
    await original.close();
    engine.dispose();
    await rm(work, { recursive: true, force: true });
    if (!values.out) await rm(out, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`compress-from-script: ${(err as Error).message}\n`);
  process.exit(2);
});
