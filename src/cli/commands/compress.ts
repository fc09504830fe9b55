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
import { loadRecipe, parseRecipe, RecipeError, type RecipeInput } from '../../compress/recipe.js';
import { reportSummary } from '../../compress/report.js';
import { OptionError, parseDatasetFormat, parseInteger } from '../../tokens/cli-options.js';
import { parseShard } from '../../compress/shard/layers.js';
import { fail } from '../errors.js';
import { addOptions, datasetTextOptions, engineOptions } from '../shared-options.js';

interface CompressCliOptions {
  out: string;
  retain?: string;
  remove?: string;
  recipe?: string;
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
  shard?: string;
  layers?: string;
  json?: boolean;
  quiet?: boolean;
}

function parseNumber(flag: string, value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n)) throw new OptionError(`${flag} must be a number, got "${value}"`);
  return n;
}

/** Recipe from --recipe (if any) with the flags given on the command line applied on top. */
export function recipeFromOptions(opts: Pick<CompressCliOptions, 'recipe' | 'retain' | 'remove' | 'groupSize' | 'xi' | 'residualShare' | 'residualBuckets' | 'allocation' | 'whiten'>): RecipeInput {
  const base: Record<string, unknown> = opts.recipe ? { ...loadRecipe(opts.recipe) } : {};
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
  if (opts.whiten) base.whiten = {};
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
      .option('--allocation <mode>', 'fused | uniform | grouped-uniform | frequency | erank')
      .option('--whiten', 'activation-aware (whitened) SVD from calibration Gram matrices')
      .option('--format <format>', 'factored (saves memory) | dense (reconstructed weights, any HF loader)', 'factored')
      .option('--eval-sequences <n>', 'held-out sequences for the KL / top-1 check against the original', '16')
      .option('--no-eval', 'skip the KL / top-1 check')
      .option('--resume', 'continue an interrupted run in --out (same model, recipe, statistics and format)')
      .option('--shard <i/N>', 'compress only task i of N (counted from 0) of the decoder layers into a partial output; assemble the parts with `rfid-moe merge`. Needs --stats: sharded runs use the original model\'s statistics, since sequential calibration (statistics from already-compressed layers) cannot be split by layer')
      .option('--layers <list>', 'compress only these decoder layers (e.g. 0-11 or 0-3,8-11) into a partial output; needs --stats'),
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
  if (opts.shard !== undefined && opts.layers !== undefined) throw new OptionError('give either --shard or --layers, not both');
  if ((opts.shard !== undefined || opts.layers !== undefined) && opts.stats === undefined) {
    throw new OptionError(
      'a sharded compression needs routing statistics made beforehand: run `rfid-moe calibrate` (itself shardable with --shard i/N and `rfid-moe merge-stats`) and pass them with --stats. Sequential calibration (statistics from already-compressed layers) cannot be split by layer, so sharded runs use the original model\'s statistics',
    );
  }
  if (opts.format !== 'factored' && opts.format !== 'dense') throw new OptionError(`--format must be factored or dense, got "${opts.format}"`);
  const recipe = recipeFromOptions(opts);
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
      format: parseDatasetFormat(opts.datasetFormat),
      textField: opts.textField,
    };
  } else options.selfSampled = { samples, seqLen, seed };
  const report = await compress(model, recipe, options);
  if (report.part && !opts.json) {
    process.stdout.write(`part complete: layers ${report.part.layers.length} of ${report.part.numLayers} in ${report.out}; when every task is done: rfid-moe merge <part dirs…> --out <dir>\n`);
    return;
  }
  process.stdout.write(opts.json ? JSON.stringify({ ok: true, ...report }) + '\n' : reportSummary(report));
}
