/**
 * `rfid-moe compress <model> --out <dir> (--retain γ | --remove ρ) [--dataset f | --stats s] …`
 *
 * Builds the recipe from the flags (or --recipe file, flags overriding it), runs the pipeline
 * with a progress bar on stderr, and prints what it did: parameters before and after, the three
 * reductions, KL and top-1 against the original, time, engine (`--json`: the whole report on stdout).
 */
import { Option, type Command } from 'commander';
import { parseEngineChoice } from '../../engine/index.js';
import { openCheckpoint } from '../../checkpoint/open.js';
import { compress, type CompressOptions } from '../../compress/pipeline.js';
import type { CompressProgress } from '../../compress/progress.js';
import { ALLOCATIONS, loadRecipe, parseRecipe, RecipeError, type RecipeInput } from '../../compress/recipe.js';
import { DEFAULT_PRESET, PRESET_NAMES } from '../../compress/presets.js';
import { calibratesLayerByLayer, DEFAULT_CALIBRATION_MODE, resolveCalibrationMode } from '../../compress/stages/calibrate.js';

/** What the CLI uses instead of the default when only routing statistics (no Gram matrices) are given. */
const FALLBACK_PRESET = 'waterfill';

import { reportSummary } from '../../compress/report.js';
import { parseShard } from '../../compress/shard/layers.js';
import type { DatasetFormat } from '../../tokens/dataset.js';
import { OptionError, parseInteger, parseNumber } from '../options.js';
import { CommandProgress } from '../progress.js';
import { translateOptions, optionFlags } from '../errors.js';
import { addOptions, datasetTextOptions, defaultText, type EngineCliOptions, engineOptions, type OutputCliOptions, outputOptions } from '../common-options.js';

interface CompressCliOptions extends EngineCliOptions, OutputCliOptions {
  out: string;
  retain?: string;
  remove?: string;
  recipe?: string;
  preset?: string;
  refit?: boolean;
  gramWeighting?: string;
  dataset?: string;
  stats?: string;
  grams?: string;
  calibration?: 'sequential' | 'original';
  samples?: string;
  seqLen?: string;
  seed: string;
  tokenizer?: string;
  datasetFormat: DatasetFormat | 'auto';
  textField: string;
  groupSize?: string;
  xi?: string;
  residualShare?: string;
  residualBuckets?: string;
  allocation?: string;
  whiten?: boolean;
  format: 'factored' | 'dense';
  evalSequences: string;
  eval: boolean;
  resume?: boolean;
  shard?: string;
  layers?: string;
  spectraOut?: string;
  rankBudgets?: string;
}

/** Recipe from --recipe (if any) with the flags given on the command line applied on top. */
export function recipeFromOptions(
  opts: Pick<CompressCliOptions, 'recipe' | 'preset' | 'retain' | 'remove' | 'groupSize' | 'xi' | 'residualShare' | 'residualBuckets' | 'allocation' | 'whiten' | 'refit' | 'gramWeighting'>,
): RecipeInput {
  if (opts.recipe !== undefined && opts.preset !== undefined) {
    throw new OptionError('give either --preset or --recipe (a recipe file already names every setting); flags given with either override it');
  }
  // no recipe file: the named preset, by default the one that measured best (README, "Choosing a method")
  const base: Record<string, unknown> = opts.recipe ? { ...loadRecipe(opts.recipe) } : { preset: opts.preset ?? 'default' };
  if (opts.retain !== undefined || opts.remove !== undefined) {
    delete base.retain;
    delete base.remove;
    delete base.budgetGivenAs;
  }
  if (opts.retain !== undefined) base.retain = parseNumber('--retain', opts.retain);
  if (opts.remove !== undefined) base.remove = parseNumber('--remove', opts.remove);
  if (base.retain === undefined && base.remove === undefined) {
    throw new RecipeError('give the budget: --retain γ (fraction of gate+up parameters kept, e.g. 0.6) or --remove ρ (fraction removed)');
  }
  if (opts.groupSize !== undefined) base.groupSize = parseInteger('--group-size', opts.groupSize, 1);
  if (opts.xi !== undefined) base.xi = parseNumber('--xi', opts.xi);
  const residual = { ...((base.residual as Record<string, unknown> | undefined) ?? {}) };
  if (opts.residualShare !== undefined) residual.share = parseNumber('--residual-share', opts.residualShare);
  if (opts.residualBuckets !== undefined) residual.buckets = opts.residualBuckets;
  base.residual = residual;
  if (opts.allocation !== undefined) base.allocation = opts.allocation;
  if (opts.whiten !== undefined) base.whiten = opts.whiten ? {} : false;
  if (opts.refit !== undefined) base.refit = opts.refit;
  if (opts.gramWeighting !== undefined) base.gramWeighting = opts.gramWeighting;
  return parseRecipe(base);
}

/** The recipe's own defaults, shown in --help (flags left out keep the --recipe file's values). */
const RECIPE_DEFAULTS = parseRecipe({ retain: 0.5 });

export function register(program: Command): void {
  const recipeOption = (flags: string, help: string, shown: unknown) => defaultText(new Option(flags, help), `${String(shown)}, or the --recipe file's`);
  addOptions(
    program
      .command('compress')
      .description('compress the routed experts of an MoE checkpoint with RFID-MoE')
      .argument('<model>', 'checkpoint directory')
      .requiredOption('--out <dir>', 'output directory (new or empty; or an interrupted run with --resume)'),
    [
      defaultText(new Option('--retain <γ>', 'fraction of the gate+up parameters kept, in (0, 1)'), 'none: give --retain or --remove'),
      defaultText(new Option('--remove <ρ>', 'fraction of the gate+up parameters removed, in (0, 1)'), 'none: give --retain or --remove'),
      defaultText(new Option('--preset <name>', `named recipe (flags given here override it): ${PRESET_NAMES.join(', ')}; "default" is the best measured (now ${DEFAULT_PRESET}); "paper" is RFID-MoE as published`), 'default'),
      defaultText(new Option('--recipe <file>', 'recipe JSON (flags given here override it)'), 'none'),
      defaultText(new Option('--dataset <file>', 'calibrate on this text (plain text, .jsonl or WikiText .raw)'), 'sequences sampled from the model'),
      defaultText(new Option('--stats <file>', 'routing statistics from `rfid-moe calibrate`'), 'none'),
      defaultText(new Option('--grams <dir>', 'per-expert Gram matrices from `rfid-moe calibrate --grams` (for --whiten with --stats)'), 'none'),
      defaultText(
        new Option(
          '--calibration <mode>',
          "where a run that calibrates itself (--dataset, or sampled sequences) takes each layer's statistics from: sequential (the outputs of the already-compressed layers before it) | original (the original model's activations; collected as each layer is reached when the recipe needs Gram matrices, so the disk holds one layer's)",
        ).choices(['sequential', 'original']),
        `${DEFAULT_CALIBRATION_MODE} (measured the better on the shipped models; sequential cannot be used with --stats, --grams or a model-wide allocation)`,
      ),
      defaultText(new Option('--samples <n>', 'calibration windows / sampled sequences'), '128 with --dataset, 32 sampled'),
      defaultText(new Option('--seq-len <L>', 'tokens per calibration window / sampled sequence'), '512 with --dataset, 128 sampled'),
      new Option('--seed <s>', 'seed of calibration windows or sampling').default('0'),
      recipeOption('--group-size <k>', 'experts per shared basis (1 = per-expert SVD)', RECIPE_DEFAULTS.groupSize),
      recipeOption('--xi <ξ>', 'weight of effective rank in the fused score C = ξ·E + (1 − ξ)·F', RECIPE_DEFAULTS.xi),
      recipeOption('--residual-share <β>', 'share of the parameters spent on residual vectors (0 disables)', RECIPE_DEFAULTS.residual.share),
      recipeOption('--residual-buckets <scheme>', 'bucket scheme of the sparse projection: tile | random', RECIPE_DEFAULTS.residual.buckets),
      recipeOption('--allocation <mode>', `rank allocation: ${ALLOCATIONS.join(' | ')}`, RECIPE_DEFAULTS.allocation),
      defaultText(new Option('--whiten', 'activation-aware (whitened) SVD from calibration Gram matrices'), 'per preset'),
      new Option('--no-whiten', 'plain SVD of the raw weights (default: as the preset says)'),
      defaultText(new Option('--refit', "refit each expert's coefficients against its own calibration activations"), 'per preset'),
      new Option('--no-refit', 'keep the coefficients of the shared factorisation (default: as the preset says)'),
      defaultText(new Option('--gram-weighting <w>', 'how routed tokens count in the calibration Gram matrices: tokens | routing | routing-squared'), 'per preset'),
      new Option('--format <format>', 'output format: factored (saves memory and disk) | dense (reconstructed weights, any HF loader; saves nothing)')
        .choices(['factored', 'dense'])
        .default('factored'),
      new Option('--eval-sequences <n>', 'held-out sequences for the KL / top-1 check against the original').default('16'),
      new Option('--no-eval', 'skip the KL / top-1 check (default: the check runs)'),
      new Option('--resume', 'continue an interrupted run in --out (same model, recipe, statistics and format)').default(false),
      defaultText(
        new Option(
          '--shard <i/N>',
          "compress only task i of N (counted from 0) of the decoder layers into a partial output; assemble the parts with `rfid-moe merge`. Needs --stats: sharded runs use the original model's statistics, since sequential calibration (statistics from already-compressed layers) cannot be split by layer",
        ),
        'every layer',
      ),
      defaultText(new Option('--layers <list>', 'compress only these decoder layers (e.g. 0-11 or 0-3,8-11) into a partial output; needs --stats'), 'every layer'),
      defaultText(
        new Option('--spectra-out <file>', 'model-wide allocation of a sharded run, phase 1: write the spectra of this task\'s layers to this file and stop; then `rfid-moe allocate`'),
        'not written',
      ),
      defaultText(new Option('--rank-budgets <file>', 'model-wide allocation of a sharded run, phase 3: the budgets written by `rfid-moe allocate`'), 'computed here'),
    ],
    datasetTextOptions('tokenizer.json for --dataset'),
    engineOptions(),
    outputOptions('print the report as JSON on stdout'),
  ).action(async (model: string, opts: CompressCliOptions, command: Command) => run(model, opts, command));
}

async function run(model: string, opts: CompressCliOptions, command: Command): Promise<void> {
  if (opts.retain !== undefined && opts.remove !== undefined) throw new OptionError('give either --retain or --remove, not both');
  if (opts.dataset !== undefined && opts.stats !== undefined) throw new OptionError('give routing statistics either as --stats or as --dataset, not both');
  if (opts.shard !== undefined && opts.layers !== undefined) throw new OptionError('give either --shard or --layers, not both');
  if ((opts.shard !== undefined || opts.layers !== undefined) && opts.stats === undefined) {
    throw new OptionError(
      "a sharded compression needs routing statistics made beforehand: run `rfid-moe calibrate` (itself shardable with --shard i/N and `rfid-moe merge-stats`) and pass them with --stats. Sequential calibration (statistics from already-compressed layers) cannot be split by layer, so sharded runs use the original model's statistics",
    );
  }
  let recipe = recipeFromOptions(opts);
  if (opts.recipe === undefined && opts.preset === undefined && opts.stats !== undefined && opts.grams === undefined && (recipe.whiten !== false || recipe.refit)) {
    // the default whitens, which needs each expert's Gram matrix; statistics alone do not carry them
    process.stderr.write(`note: the default preset (${DEFAULT_PRESET}) needs calibration Gram matrices (--grams, or --dataset); with --stats alone using preset "${FALLBACK_PRESET}" (raw spectra)\n`);
    recipe = recipeFromOptions({ ...opts, preset: FALLBACK_PRESET });
  }
  const samples = opts.samples === undefined ? undefined : parseInteger('--samples', opts.samples, 1);
  const seqLen = opts.seqLen === undefined ? undefined : parseInteger('--seq-len', opts.seqLen, 2);
  const seed = parseInteger('--seed', opts.seed, 0);
  const evalSequences = opts.eval ? parseInteger('--eval-sequences', opts.evalSequences, 0) : 0;
  const options: CompressOptions = {
    out: opts.out,
    storage: opts.format,
    engine: parseEngineChoice(opts.engine),
    threads: opts.threads === undefined ? undefined : parseInteger('--threads', opts.threads, 1),
    resume: opts.resume ?? false,
    evaluation: { sequences: evalSequences },
    ...(opts.grams ? { grams: opts.grams } : {}),
    ...(opts.calibration ? { calibration: opts.calibration } : {}),
  };
  // the library's messages name its options (`storage`); this command shows its flags instead
  const flags = optionFlags(command);
  // a run that calibrates layer by layer does it inside each layer's step: no separate pass to show
  const parsed = parseRecipe(recipe);
  const calibrationPass = opts.stats === undefined && !calibratesLayerByLayer(parsed, options, resolveCalibrationMode(parsed, options));
  const progress = opts.quiet ? undefined : await compressProgress(model, opts, calibrationPass, evalSequences, (text) => translateOptions(text, flags));
  if (progress) options.onProgress = progress.listener;
  if (opts.spectraOut !== undefined) options.spectraOut = opts.spectraOut;
  if (opts.rankBudgets !== undefined) options.rankBudgets = opts.rankBudgets;
  if (opts.shard !== undefined) options.layers = { shard: parseShard(opts.shard, '--shard') };
  else if (opts.layers !== undefined) options.layers = { layers: opts.layers };
  if (opts.stats) options.stats = opts.stats;
  else if (opts.dataset) {
    options.dataset = {
      file: opts.dataset,
      samples,
      seqLen,
      seed,
      tokenizer: opts.tokenizer,
      format: opts.datasetFormat,
      textField: opts.textField,
    };
  } else options.selfSampled = { samples, seqLen, seed };
  const compressed = await compress(model, recipe, options);
  progress?.display.finish();
  const report = { ...compressed, warnings: compressed.warnings.map((w) => translateOptions(w, flags)) };
  if (opts.spectraOut !== undefined && !opts.json) {
    process.stdout.write(`spectra of ${report.part?.layers.length ?? 0} MoE layer(s) written to ${report.out}; when every task is done: rfid-moe allocate <spectra files…> --out budgets.json\n`);
    return;
  }
  if (report.part && !opts.json) {
    process.stdout.write(`part complete: ${report.part.layers.length} of ${report.part.numLayers} layers in ${report.out}; when every task is done: rfid-moe merge <part dirs…> --out <dir>\n`);
    return;
  }
  process.stdout.write(opts.json ? JSON.stringify({ ok: true, ...report }) + '\n' : reportSummary(report));
}

/**
 * The shared progress display for a compression run: calibration (one step per decoder layer,
 * unless --stats gives the statistics), compression (one step per MoE layer), the fidelity check.
 * The plan is read from the checkpoint's layout (config and headers only) so the ETA covers the
 * whole run from the first layer on. Compression steps are the MoE layers (a dense layer only
 * copies its tensors; counted as a step, its near-zero time made the ETA of the MoE layers after
 * it far too short); each line also names the decoder layer.
 */
async function compressProgress(
  model: string,
  opts: CompressCliOptions,
  calibrationPass: boolean,
  evalSequences: number,
  translate: (text: string) => string,
): Promise<{ display: CommandProgress; listener: (e: CompressProgress) => void }> {
  const ckpt = await openCheckpoint(model);
  const layers = ckpt.layout.layers.length;
  // each MoE layer's place among the MoE layers: the compression stage's steps
  const moeRank = new Map(ckpt.layout.layers.filter((l) => l.kind === 'moe').map((l, i) => [l.index, i]));
  await ckpt.close();
  const selfSampled = !opts.stats && !opts.dataset;
  const sampledLength = opts.seqLen === undefined ? 128 : Number(opts.seqLen);
  const display = new CommandProgress('compress', [
    // self-sampled calibration first generates its sequences, one step per position
    { name: 'sampling position', steps: selfSampled ? sampledLength - 1 : 0 },
    { name: 'calibration layer', steps: calibrationPass ? layers : 0 },
    { name: 'MoE layer', steps: moeRank.size },
    { name: 'evaluation', steps: evalSequences > 0 ? 1 : 0 },
  ]);
  // a self-sampled calibration starts twice: sampling the sequences, then the routing pass
  let calibrationStarts = 0;
  let compressing = false;
  const listener = (e: CompressProgress): void => {
    switch (e.type) {
      case 'calibration':
        if (e.phase === 'start') calibrationStarts++;
        if (e.phase === 'layer') {
          const stage = e.source === 'self-sampled' && calibrationStarts === 1 ? 'sampling position' : 'calibration layer';
          display.step(stage, (e.layer ?? 0) + 1, e.of);
        } else display.note(`calibrate: ${e.message}`);
        return;
      case 'layer-start':
        if (!compressing) display.begin('MoE layer');
        compressing = true;
        return;
      case 'layer-group':
        return;
      case 'layer-done': {
        // a dense layer's step only copies its tensors: counted, it would make the rate (and the ETA) of the MoE layers after it seem instant
        const rank = moeRank.get(e.layer);
        if (rank !== undefined) display.step('MoE layer', rank + 1, undefined, `(decoder layer ${e.layer + 1}/${e.of}, ${e.resumed ? 'kept from the interrupted run' : `${e.seconds.toFixed(1)} s`})`);
        return;
      }
      case 'evaluation':
        if (e.phase === 'start') {
          display.begin('evaluation');
          display.note(`evaluate: ${e.message}`);
        } else display.step('evaluation', 1, 1, `(${e.message})`);
        return;
      case 'finalize':
        display.note(`finalize: ${e.message}`);
        return;
      case 'warning':
        display.note(`warning: ${translate(e.message)}`);
        return;
    }
  };
  return { display, listener };
}
