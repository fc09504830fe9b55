/**
 * `rfid-moe calibrate <model> --dataset <file> [--samples N] [--seq-len L] [--seed S] --out stats.json`
 *
 * Runs the uncompressed model layer by layer over `samples` windows of `seq-len` tokens sampled
 * from the dataset with `seed`, counts every MoE layer's top-k selections per expert and writes
 * the schema-validated statistics file atomically. `--grams DIR` also streams each expert's
 * input Gram matrix XᵀX (f64) to DIR for activation-aware whitening. Progress on stderr.
 */
import path from 'node:path';
import { Option, type Command } from 'commander';
import { openCheckpoint } from '../../checkpoint/open.js';
import { withFiniteChecks } from '../../checkpoint/finite.js';
import { checkCalibrationSeqLen, defaultCalibrationSeqLen } from '../../eval/seq-len.js';
import { checkGramsOutDir, checkStatsOutPath } from '../../routing-stats/output-path.js';
import { parseShard, shardRange } from '../../util/shards.js';
import { createEngine, parseEngineChoice } from '../../engine/index.js';
import { collectRoutingStats } from '../../routing-stats/collect.js';
import { GramDirectorySink } from '../../routing-stats/gram.js';
import { checkRoomForGrams, gramBytes } from '../../routing-stats/gram-room.js';
import { modelFingerprint } from '../../routing-stats/fingerprint.js';
import { writeRoutingStats } from '../../routing-stats/schema.js';
import { assertRunnable } from '../../runtime/checkpoint-weights.js';
import { calibrationWindows } from '../../tokens/windows.js';
import { tokenizeDataset } from '../../tokens/prepare.js';
import type { DatasetFormat } from '../../tokens/dataset.js';
import { OptionError, parseInteger } from '../options.js';
import { CommandProgress } from '../progress.js';
import { addOptions, datasetTextOptions, defaultText, type EngineCliOptions, engineOptions, type OutputCliOptions, outputOptions } from '../common-options.js';

interface CalibrateOptions extends EngineCliOptions, OutputCliOptions {
  dataset: string;
  samples: string;
  seqLen?: string;
  seed: string;
  shard?: string;
  out: string;
  tokenizer?: string;
  datasetFormat: DatasetFormat | 'auto';
  textField: string;
  grams?: string;
  minTokens: string;
}

export function register(program: Command): void {
  addOptions(
    program
      .command('calibrate')
      .description('count expert routing (top-k selections per layer and expert) over calibration windows')
      .argument('<model>', 'checkpoint directory')
      .requiredOption('--dataset <file>', 'calibration text: plain text, .jsonl, or WikiText .raw')
      .requiredOption('--out <stats.json>', 'statistics file to write')
      .option('--samples <n>', 'number of windows', '128')
      .addOption(defaultText(new Option('--seq-len <L>', 'tokens per window'), "512, or the model's max_position_embeddings when shorter"))
      .option('--seed <s>', 'seed of the window offsets', '0')
      .option('--min-tokens <n>', 'warn about experts routed fewer tokens than this', '10'),
    [
      defaultText(new Option('--grams <dir>', "also write each expert's input Gram matrix XᵀX (f64 safetensors) into this directory"), 'not written'),
      defaultText(new Option('--shard <i/N>', 'process only task i of N (counted from 0) of the windows; add the parts up with `rfid-moe merge-stats`'), 'every window'),
    ],
    datasetTextOptions('tokenizer.json to tokenize the dataset with'),
    engineOptions(),
    outputOptions('print the result as JSON on stdout'),
  ).action(async (model: string, opts: CalibrateOptions) => calibrate(model, opts));
}

async function calibrate(model: string, opts: CalibrateOptions): Promise<void> {
  const samples = parseInteger('--samples', opts.samples, 1);
  const explicitSeqLen = opts.seqLen === undefined ? undefined : parseInteger('--seq-len', opts.seqLen, 1);
  const seed = parseInteger('--seed', opts.seed, 0);
  const minTokens = parseInteger('--min-tokens', opts.minTokens, 0);
  const format = opts.datasetFormat;
  const engineChoice = parseEngineChoice(opts.engine);
  const threads = opts.threads === undefined ? undefined : parseInteger('--threads', opts.threads, 1);
  const progress = new CommandProgress('calibrate', [{ name: 'layer', steps: 0 }], { enabled: !opts.quiet });
  const log = (line: string) => progress.note(line);

  // every weight read is checked for NaN/Inf (the error names the layer and tensor)
  const ckpt = withFiniteChecks(await openCheckpoint(model));
  try {
    assertRunnable(ckpt);
    // refused before any work: overwriting what is not a statistics file, writing into a model
    await checkStatsOutPath(opts.out, ckpt.dir);
    if (opts.grams) {
      await checkGramsOutDir(opts.grams, ckpt.dir);
      await checkRoomForGrams(path.resolve(opts.grams), gramBytes(ckpt), 'free space there, or give --grams a directory on a larger disk');
    }
    const seqLen = explicitSeqLen ?? defaultCalibrationSeqLen(ckpt.config);
    checkCalibrationSeqLen(ckpt.config, seqLen);
    const data = await tokenizeDataset(opts.tokenizer ?? model, opts.dataset, { format, textField: opts.textField });
    log(`dataset: ${data.ids.length} tokens (${data.dataset.format}, tokenizer ${data.tokenizerPath})`);
    const all = calibrationWindows(data.ids, samples, seqLen, seed);
    const shard = opts.shard === undefined ? undefined : parseShard(opts.shard, '--shard');
    const [first, end] = shard ? shardRange(samples, shard.index, shard.count) : [0, samples];
    if (end <= first) throw new OptionError(`--shard ${opts.shard} owns no window: ${samples} samples cannot be split into ${shard!.count} shards; use at most ${samples} shards`);
    const windows = all.slice(first, end);
    if (shard) log(`shard ${shard.index}/${shard.count}: windows ${first}-${end - 1} of ${samples}`);
    const { engine, notice } = await createEngine(engineChoice, { threads });
    log(notice);
    try {
      const grams = opts.grams ? new GramDirectorySink(path.resolve(opts.grams), ckpt.config.hiddenSize, modelFingerprint(ckpt)) : undefined;
      const started = Date.now();
      progress.begin('layer');
      const stats = await collectRoutingStats(
        ckpt,
        engine,
        windows,
        {
          dataset: { file: path.basename(opts.dataset), format: data.dataset.format, sha256: data.dataset.sha256, tokens: data.ids.length },
          samples,
          seqLen,
          seed,
          minTokens,
        },
        { grams, onLayer: (p) => progress.step('layer', p.layer + 1, p.numLayers) },
      );
      const seconds = (Date.now() - started) / 1000;
      if (shard) stats.shard = { index: shard.index, count: shard.count, windows: [first, end], grams: opts.grams ? path.resolve(opts.grams) : null };
      await writeRoutingStats(opts.out, stats);
      if (grams) await grams.finish();
      progress.finish();
      for (const w of stats.warnings) process.stderr.write(`warning: ${w}\n`);
      const summary = {
        ok: true,
        out: path.resolve(opts.out),
        grams: opts.grams ? path.resolve(opts.grams) : null,
        moeLayers: stats.layers.length,
        tokens: stats.calibration.tokens,
        seconds,
        tokensPerSecond: stats.calibration.tokens / seconds,
        warnings: stats.warnings.length,
      };
      if (opts.json) process.stdout.write(JSON.stringify(summary) + '\n');
      else {
        process.stdout.write(
          `wrote ${summary.out}: ${summary.moeLayers} MoE layers, ${summary.tokens} tokens in ${seconds.toFixed(1)} s ` +
            `(${summary.tokensPerSecond.toFixed(0)} tokens/s), ${summary.warnings} warning(s)\n`,
        );
      }
    } finally {
      engine.dispose();
    }
  } finally {
    await ckpt.close();
  }
}
