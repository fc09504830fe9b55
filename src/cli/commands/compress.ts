/**
 * `rfid-moe compress <model> --out <dir> (--retain γ | --remove ρ) [--dataset f | --stats s] …`
 *
 * Builds the recipe from the flags (or --recipe file, flags overriding it), runs the pipeline
 * with a progress bar on stderr, and prints what it did: parameters before and after, the three
 * reductions, KL and top-1 against the original, time, engine (`--json`: the whole report on stdout).
 */
import type { Command } from 'commander';
import { parseEngineChoice } from '../../engine/index.js';
import { compress, type CompressOptions } from '../../compress/pipeline.js';
import { stderrProgress } from '../../compress/progress.js';
import { ALLOCATIONS, loadRecipe, parseRecipe, RecipeError, type RecipeInput } from '../../compress/recipe.js';
import { DEFAULT_PRESET, PRESET_NAMES } from '../../compress/presets.js';

/** What the CLI uses instead of the default when only routing statistics (no Gram matrices) are given. */
const FALLBACK_PRESET = 'waterfill';
import { reportSummary } from '../../compress/report.js';
import { OptionError, parseDatasetFormat, parseInteger } from '../../tokens/cli-options.js';
import { fail } from '../errors.js';
import { addOptions, datasetTextOptions, engineOptions } from '../shared-options.js';

interface CompressCliOptions {
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
  samples?: string;
  seqLen?: string;
  seed: string;
  tokenizer?: string;
  datasetFormat: string;
  textField: string;
  groupSize?: string;
  xi?: string;
  residualShare?: string;
  residualBuckets?: string;
  allocation?: string;
  whiten?: boolean;
  format: string;
  evalSequences: string;
  eval: boolean;
  engine: string;
  threads?: string;
  resume?: boolean;
  json?: boolean;
  quiet?: boolean;
}

function parseNumber(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new OptionError(`${flag} must be a number, got "${value}"`);
  return n;
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

export function register(program: Command): void {
  addOptions(
    program
      .command('compress')
      .description('compress the routed experts of an MoE checkpoint with RFID-MoE')
      .argument('<model>', 'checkpoint directory')
      .requiredOption('--out <dir>', 'output directory (new or empty; or an interrupted run with --resume)')
      .option('--retain <γ>', 'fraction of the gate+up parameters kept, in (0, 1)')
      .option('--remove <ρ>', 'fraction of the gate+up parameters removed, in (0, 1)')
      .option('--preset <name>', `named recipe (flags given here override it): ${PRESET_NAMES.join(', ')}; default: "default", the best measured (now ${DEFAULT_PRESET}); "paper" is RFID-MoE as published`)
      .option('--recipe <file>', 'recipe JSON (flags given here override it)')
      .option('--dataset <file>', 'calibrate on this text (plain text, .jsonl or WikiText .raw)')
      .option('--stats <file>', 'routing statistics from `rfid-moe calibrate`')
      .option('--grams <dir>', 'per-expert Gram matrices from `rfid-moe calibrate --grams` (for --whiten with --stats)')
      .option('--samples <n>', 'calibration windows / sampled sequences (default 128 with --dataset, 32 sampled)')
      .option('--seq-len <L>', 'tokens per calibration window / sampled sequence (default 512 with --dataset, 128 sampled)')
      .option('--seed <s>', 'seed of calibration windows or sampling', '0')
      .option('--group-size <k>', 'experts per shared basis (1 = per-expert SVD)')
      .option('--xi <ξ>', 'weight of effective rank in the fused score C = ξ·E + (1 − ξ)·F')
      .option('--residual-share <β>', 'share of the parameters spent on residual vectors (0 disables)')
      .option('--residual-buckets <scheme>', 'tile | random')
      .option('--allocation <mode>', ALLOCATIONS.join(' | '))
      .option('--whiten', 'activation-aware (whitened) SVD from calibration Gram matrices')
      .option('--no-whiten', 'plain SVD of the raw weights (overrides a preset that whitens)')
      .option('--refit', "refit each expert's coefficients against its own calibration activations")
      .option('--no-refit', 'keep the coefficients of the shared factorisation')
      .option('--gram-weighting <w>', 'how routed tokens count in the calibration Gram matrices: tokens | routing | routing-squared')
      .option('--format <format>', 'factored (saves memory) | dense (reconstructed weights, any HF loader)', 'factored')
      .option('--eval-sequences <n>', 'held-out sequences for the KL / top-1 check against the original', '16')
      .option('--no-eval', 'skip the KL / top-1 check')
      .option('--resume', 'continue an interrupted run in --out (same model, recipe, statistics and format)'),
    datasetTextOptions('dataset-format', "tokenizer.json for --dataset (default: the model directory's)"),
    engineOptions(),
  )
    .option('--json', 'print the report as JSON on stdout')
    .option('--quiet', 'no progress on stderr')
    .action(async (model: string, opts: CompressCliOptions) => {
      try {
        await run(model, opts);
      } catch (err) {
        fail(err, opts.json ?? false);
      }
    });
}

async function run(model: string, opts: CompressCliOptions): Promise<void> {
  if (opts.retain !== undefined && opts.remove !== undefined) throw new OptionError('give either --retain or --remove, not both');
  if (opts.dataset !== undefined && opts.stats !== undefined) throw new OptionError('give routing statistics either as --stats or as --dataset, not both');
  if (opts.format !== 'factored' && opts.format !== 'dense') throw new OptionError(`--format must be factored or dense, got "${opts.format}"`);
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
    ...(opts.quiet ? {} : { onProgress: stderrProgress() }),
  };
  if (opts.stats) options.stats = opts.stats;
  else if (opts.dataset) {
    options.dataset = {
      file: opts.dataset,
      samples,
      seqLen,
      seed,
      tokenizer: opts.tokenizer,
      format: parseDatasetFormat(opts.datasetFormat),
      textField: opts.textField,
    };
  } else options.selfSampled = { samples, seqLen, seed };
  const report = await compress(model, recipe, options);
  process.stdout.write(opts.json ? JSON.stringify({ ok: true, ...report }) + '\n' : reportSummary(report));
}
