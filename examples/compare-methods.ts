/**
 * Compare compression methods across retain fractions on one model, measured end to end:
 * compress with each (method, γ), evaluate perplexity on WikiText-2 test, PTB test and the
 * model's held-out training-domain text, KL / top-1 against the original on the latter, and the
 * weight- and output-space errors of the gate+up matrices. Writes
 *
 *   <out>/compare-methods.json          raw numbers (rewritten after every run)
 *   <out>/perplexity-vs-retained.svg    perplexity against retained gate+up parameters
 *   <out>/kl-vs-retained.svg            mean KL against the original (sets compared with it)
 *   RESULTS.md                          the tables, between markers (prose around them is kept)
 *
 *   node --import tsx examples/compare-methods.ts [--model examples/models/mixtral-tiny-shakespeare]
 *        [--retain 0.8,0.6,0.4,0.2] [--methods waterfill-whiten,uniform,uniform-whiten,grouped-uniform,rfid,rfid-no-residual]
 *        --data <dir> [--out results] [--results-md RESULTS.md] [--seq-len 256]
 *        [--max-windows N] [--calib-samples 128] [--calib-seq-len 256] [--seed 0]
 *        [--kl-sets wikitext2,ptb,shakespeare,wikivalid] [--sets wikitext2,ptb,shakespeare,wikivalid] [--tag name]
 *        [--engine auto] [--threads N] [--fresh]
 *
 * Every method gets the same routing statistics and Gram matrices, from one calibration pass over
 * the training parts of the model's training text (never a test set). A rerun with the same
 * settings keeps the runs already in compare-methods.json and does only the missing ones
 * (--fresh starts over). PTB is LDC text: only numbers derived from it are written.
 */
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { parameterCounts } from '../src/checkpoint/counts.js';
import { openCheckpoint } from '../src/checkpoint/open.js';
import type { Checkpoint } from '../src/checkpoint/types.js';
import { compress, type CompressionReport } from '../src/compress/index.js';
import { parseRecipe } from '../src/compress/recipe.js';
import { loadCompressed } from '../src/compressed/load.js';
import { createEngine, parseEngineChoice } from '../src/engine/index.js';
import type { Engine } from '../src/engine/types.js';
import { evaluateWindows, ReferenceCache } from '../src/eval/index.js';
import { writeFileAtomic } from '../src/io/atomic.js';
import { collectRoutingStats } from '../src/routing-stats/collect.js';
import { modelFingerprint } from '../src/routing-stats/fingerprint.js';
import { GRAM_WEIGHTINGS, GramDirectorySink, type GramWeighting } from '../src/routing-stats/gram.js';
import { writeRoutingStats } from '../src/routing-stats/schema.js';
import { loadTokenizer } from '../src/tokens/tokenizer.js';
import { evaluationWindows } from '../src/tokens/windows.js';
import { approximationError } from './lib/approximation-error.js';
import { EVAL_SET_KEYS, loadCalibration, loadEvalSets, type EvalSet } from './lib/datasets.js';
import { METHOD_LABELS, METHODS, QUICK_METHODS, RESULTS_METHODS, parseMethods, parseRetains, recipeFor, type MethodName } from './lib/methods.js';
import { PALETTE, lineChartSvg } from './lib/svg-chart.js';
import { resultsMarkdown, spliceResults, SWEEP_FORMAT, type EvalNumbers, type EvalSetInfo, type RunResult, type SweepResults } from './lib/sweep-results.js';

const repoRoot = path.resolve(import.meta.dirname, '..');

const { values } = parseArgs({
  options: {
    model: { type: 'string', default: path.join(repoRoot, 'examples', 'models', 'mixtral-tiny-shakespeare') },
    retain: { type: 'string' },
    methods: { type: 'string' },
    out: { type: 'string', default: path.join(repoRoot, 'results') },
    'results-md': { type: 'string', default: path.join(repoRoot, 'RESULTS.md') },
    data: { type: 'string' },
    tokenizer: { type: 'string' },
    'seq-len': { type: 'string', default: '256' },
    'max-windows': { type: 'string' },
    'calib-samples': { type: 'string' },
    'calib-seq-len': { type: 'string', default: '256' },
    seed: { type: 'string', default: '0' },
    'kl-sets': { type: 'string' },
    sets: { type: 'string' },
    tag: { type: 'string' },
    engine: { type: 'string', default: 'auto' },
    threads: { type: 'string' },
    fresh: { type: 'boolean', default: false },
    quick: { type: 'boolean', default: false },
    'gram-weighting': { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});

const USAGE =
  'usage: node --import tsx examples/compare-methods.ts [--model dir] [--retain 0.8,0.6,0.4,0.2] [--methods a,b,…] [--out results] ' +
  '--data <dir> [--results-md RESULTS.md] [--seq-len 256] [--max-windows N] [--calib-samples 128] [--calib-seq-len 256] [--seed 0] [--kl-sets <every set>] [--sets wikitext2,ptb,shakespeare,wikivalid] [--tag name] [--engine auto] [--threads N] [--fresh]\n' +
  `methods: ${METHODS.join(', ')}\n`;

function positiveInt(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer, got "${value}"`);
  return n;
}

/** Repository-relative when inside the repository (so committed results carry no local paths). */
function displayPath(p: string): string {
  const rel = path.relative(repoRoot, p);
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel.split(path.sep).join('/') : p;
}

const log = (line: string) => process.stderr.write(line + '\n');

interface Settings {
  model: string;
  retains: number[];
  methods: MethodName[];
  out: string;
  resultsMd: string;
  dataDir: string;
  seqLen: number;
  maxWindows: number | undefined;
  calibSamples: number;
  calibSeqLen: number;
  seed: number;
  /** evaluation sets also compared with the original (KL, top-1): each costs a reference pass */
  klSets: string[];
  /** evaluation sets to run (default: every one present) */
  sets: string[] | undefined;
  /** names this sweep's block in RESULTS.md, so several sweeps can share the document */
  tag: string | undefined;
  /** how routed tokens count in the Gram matrices every compressor uses, overriding each recipe's
   * own (the output-space error is always measured with the plain, token-counted ones) */
  gramWeighting: GramWeighting | undefined;
}

function parseSetKeys(list: string): string[] {
  const keys = list.split(',').map((k) => k.trim()).filter(Boolean);
  const unknown = keys.filter((k) => !EVAL_SET_KEYS.includes(k));
  if (keys.length === 0 || unknown.length > 0) throw new Error(`--sets takes a comma-separated list of ${EVAL_SET_KEYS.join(', ')}; got "${list}"`);
  return keys;
}

/**
 * --quick: a measured comparison in minutes instead of hours — γ 0.6 and 0.4, the quick method
 * list, 32 windows of each of two sets (the training domain and WikiText-2 test), KL against the
 * original on both, 64 calibration windows; results go to a quick-results Markdown file in the output folder, never to RESULTS.md.
 * Any flag given explicitly still wins.
 */
function readSettings(): Settings {
  if (values.data === undefined) {
    throw new Error('no data folder: pass --data <dir> holding wikitext-2-raw/, ptb/ and tinyshakespeare/ (the README says where to get them)');
  }
  const quick = values.quick!;
  const out = path.resolve(values.out!);
  const resultsMdGiven = process.argv.some((a) => a === '--results-md' || a.startsWith('--results-md='));
  const gramWeighting = values['gram-weighting'];
  if (gramWeighting !== undefined && !(GRAM_WEIGHTINGS as readonly string[]).includes(gramWeighting)) throw new Error(`--gram-weighting must be one of ${GRAM_WEIGHTINGS.join(', ')}, got "${gramWeighting}"`);
  return {
    model: path.resolve(values.model!),
    retains: parseRetains(values.retain ?? (quick ? '0.6,0.4' : '0.8,0.6,0.4,0.2')),
    methods: parseMethods(values.methods ?? (quick ? QUICK_METHODS : RESULTS_METHODS).join(',')),
    out,
    resultsMd: quick && !resultsMdGiven ? path.join(out, 'QUICK.md') : path.resolve(values['results-md']!),
    dataDir: path.resolve(values.data!),
    seqLen: positiveInt('--seq-len', values['seq-len'])!,
    maxWindows: positiveInt('--max-windows', values['max-windows'] ?? (quick ? '32' : undefined)),
    calibSamples: positiveInt('--calib-samples', values['calib-samples'] ?? (quick ? '64' : '128'))!,
    calibSeqLen: positiveInt('--calib-seq-len', values['calib-seq-len'])!,
    seed: Number(values.seed),
    klSets: (values['kl-sets'] ?? (quick ? 'shakespeare,wikitext2' : EVAL_SET_KEYS.join(','))).split(',').map((k) => k.trim()).filter(Boolean),
    sets: values.sets !== undefined ? parseSetKeys(values.sets) : quick ? ['shakespeare', 'wikitext2'] : undefined,
    tag: values.tag,
    gramWeighting: gramWeighting as GramWeighting | undefined,
  };
}

interface PreparedSet {
  set: EvalSet;
  windows: Int32Array[];
  /** the original's final hidden states on these windows, kept after the first comparison so
   * that every later method's KL costs no second pass of the original (memory: tokens × hidden f32) */
  referenceCache: ReferenceCache;
}

async function evaluateAll(model: Checkpoint, reference: Checkpoint | undefined, engine: Engine, sets: PreparedSet[], klSets: readonly string[]): Promise<Record<string, EvalNumbers>> {
  const out: Record<string, EvalNumbers> = {};
  for (const { set, windows, referenceCache } of sets) {
    // KL / top-1 only where asked: the first comparison on a set runs the original once more
    const ref = reference && klSets.includes(set.key) ? reference : undefined;
    const r = await evaluateWindows(model, engine, windows, ref, { referenceCache });
    out[set.key] = {
      perplexity: r.model.perplexity,
      tokens: r.model.tokens,
      windows: r.model.windows,
      ...(r.comparison ? { meanKl: r.comparison.meanKl, top1Agreement: r.comparison.top1Agreement } : {}),
    };
  }
  return out;
}

function meanResidualRecovered(report: CompressionReport): number {
  const values = report.layers.flatMap((l) => Object.values(l.types).flatMap((t) => (t ? t.groups.map((g) => g.residualEnergyRecovered) : [])));
  return values.length > 0 ? values.reduce((a, b) => a + b, 0) / values.length : 0;
}

/** Chart of one measure against the kept fraction, a panel per evaluation set (KL: only the sets compared with the original). */
function chartOf(results: SweepResults, measure: 'perplexity' | 'kl'): string {
  const methods = [...new Set(results.runs.map((r) => r.method))];
  const sets = measure === 'kl' ? results.evalSets.filter((s) => s.comparedWithOriginal) : results.evalSets;
  const valueOf = (e: EvalNumbers): number => (measure === 'kl' ? (e.meanKl ?? Number.NaN) : e.perplexity);
  return lineChartSvg({
    title: `${measure === 'kl' ? 'Mean KL(original ‖ compressed)' : 'Perplexity'} against retained gate+up parameters — ${path.basename(results.model.dir)}`,
    xLabel: 'fraction of routed gate+up parameters kept',
    yLabel: measure === 'kl' ? 'mean KL, nats' : 'perplexity',
    xDomain: [0, 1],
    panels: sets.map((s) => ({
      title: s.label,
      reference: measure === 'perplexity' && results.original.eval[s.key] ? { label: 'original', y: results.original.eval[s.key].perplexity } : undefined,
      series: methods.map((m) => ({
        label: METHOD_LABELS[m],
        color: PALETTE[METHODS.indexOf(m) % PALETTE.length],
        points: results.runs.filter((r) => r.method === m && r.eval[s.key]).map((r): [number, number] => [r.keptGateUp, valueOf(r.eval[s.key])]),
      })),
    })),
  });
}

const RESULTS_SKELETON = `# Results: RFID-MoE against its baselines

Produced by \`node --import tsx examples/compare-methods.ts\`; the tables and the chart between the
markers below are regenerated by every run.

`;

async function writeOutputs(results: SweepResults, s: Settings): Promise<void> {
  await mkdir(s.out, { recursive: true });
  const chartFile = path.join(s.out, 'perplexity-vs-retained.svg');
  const klChartFile = path.join(s.out, 'kl-vs-retained.svg');
  await writeFileAtomic(path.join(s.out, 'compare-methods.json'), JSON.stringify(results, null, 1) + '\n');
  await writeFileAtomic(chartFile, chartOf(results, 'perplexity'));
  const withKl = results.evalSets.some((e) => e.comparedWithOriginal);
  if (withKl) await writeFileAtomic(klChartFile, chartOf(results, 'kl'));
  const existing = existsSync(s.resultsMd) ? await readFile(s.resultsMd, 'utf8') : null;
  const rel = (f: string) => path.relative(path.dirname(s.resultsMd), f).split(path.sep).join('/');
  await writeFileAtomic(s.resultsMd, spliceResults(existing, resultsMarkdown(results, rel(chartFile), withKl ? rel(klChartFile) : undefined), RESULTS_SKELETON, s.tag));
}

/** Size and mtime of every file of the model directory: a sweep must not mix two versions of a model. */
async function modelStamp(dir: string): Promise<string> {
  const names = (await readdir(dir)).sort();
  const parts = await Promise.all(names.map(async (n) => {
    const st = await stat(path.join(dir, n));
    return `${n}:${st.size}:${st.mtimeMs}`;
  }));
  return parts.join('|');
}

async function previousResults(file: string, settingsKey: string, fresh: boolean): Promise<SweepResults | undefined> {
  if (fresh || !existsSync(file)) return undefined;
  try {
    const prev = JSON.parse(await readFile(file, 'utf8')) as SweepResults;
    if (prev.format === SWEEP_FORMAT && prev.settingsKey === settingsKey) return prev;
    log(`${file} holds another sweep's settings: starting over`);
  } catch (err) {
    log(`cannot reuse ${file} (${(err as Error).message}): starting over`);
  }
  return undefined;
}

async function main(): Promise<void> {
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  const s = readSettings();
  const sweepStarted = Date.now();
  const stampAtStart = await modelStamp(s.model);
  const original = await openCheckpoint(s.model);
  const assertModelUnchanged = async () => {
    if ((await modelStamp(s.model)) !== stampAtStart) {
      throw new Error(`the model files in ${s.model} changed during the sweep (replaced by another run?): the numbers would mix two models; rerun with --fresh`);
    }
  };
  const { engine, notice } = await createEngine(parseEngineChoice(values.engine!), { threads: positiveInt('--threads', values.threads) });
  log(notice);
  const work = await mkdtemp(path.join(os.tmpdir(), 'rfid-compare-'));
  try {
    const tokenizer = await loadTokenizer(values.tokenizer ?? s.model);
    const sets: PreparedSet[] = [];
    for (const set of await loadEvalSets(s.dataDir, tokenizer, log)) {
      if (s.sets && !s.sets.includes(set.key)) continue;
      if (set.ids.length < s.seqLen) {
        log(`skipping ${set.label}: ${set.ids.length} tokens, fewer than one window of ${s.seqLen}`);
        continue;
      }
      const windows = evaluationWindows(set.ids, s.seqLen, s.maxWindows);
      sets.push({ set, windows, referenceCache: new ReferenceCache(windows) });
    }
    if (sets.length === 0) throw new Error(`no evaluation text under ${s.dataDir}; pass --data <data folder>`);
    const calibration = loadCalibration(s.dataDir, tokenizer, s.calibSamples, s.calibSeqLen, s.seed);

    const evalSets: EvalSetInfo[] = sets.map(({ set, windows }) => ({
      key: set.key,
      label: set.label,
      description: set.description,
      datasetTokens: set.ids.length,
      windows: windows.length,
      trainingDomain: set.trainingDomain,
      comparedWithOriginal: s.klSets.includes(set.key),
    }));
    const fingerprint = modelFingerprint(original);
    const settingsKey = createHash('sha256')
      .update(JSON.stringify({ fingerprint, seqLen: s.seqLen, maxWindows: s.maxWindows ?? null, calibration: calibration.description, evalSets, engine: engine.name, ...(s.gramWeighting !== undefined ? { gramWeighting: s.gramWeighting } : {}) }))
      .digest('hex')
      .slice(0, 16);
    const jsonFile = path.join(s.out, 'compare-methods.json');
    const prev = await previousResults(jsonFile, settingsKey, values.fresh!);
    const counts = parameterCounts(original);
    const c = original.config;
    const results: SweepResults = {
      format: SWEEP_FORMAT,
      settingsKey,
      generated: new Date().toISOString().slice(0, 10),
      model: { dir: displayPath(s.model), fingerprint, family: c.family, params: counts.total, layers: c.numLayers, experts: c.numExperts, topK: c.topK, hidden: c.hiddenSize, expertWidth: c.expertIntermediateSize },
      engine: engine.describe(),
      calibration: calibration.description,
      seqLen: s.seqLen,
      maxWindows: s.maxWindows ?? null,
      evalSets,
      original: prev?.original ?? { eval: {}, evalSeconds: 0 },
      runs: prev?.runs ?? [],
      refused: [],
      sweepSeconds: prev?.sweepSeconds ?? 0,
    };
    const elapsedBefore = results.sweepSeconds;
    const tick = () => (results.sweepSeconds = elapsedBefore + (Date.now() - sweepStarted) / 1000);

    // one calibration pass for every method: routing counts + each expert's input Gram matrix
    log(`calibrating: ${calibration.description}`);
    const statsFile = path.join(work, 'stats.json');
    const gramsDir = path.join(work, 'grams');
    const grams = new GramDirectorySink(gramsDir, c.hiddenSize, fingerprint);
    // the compressors' Gram matrices, weighted as each method's recipe says (or as --gram-weighting
    // says for all); the output-space error is always measured with the token-counted ones
    const weightingOf = (m: MethodName): GramWeighting => s.gramWeighting ?? parseRecipe(recipeFor(m, 0.5)).gramWeighting;
    const gramsDirOf = (w: GramWeighting) => (w === 'tokens' ? gramsDir : path.join(work, `grams-${w}`));
    const stats = await collectRoutingStats(
      original,
      engine,
      calibration.windows,
      {
        dataset: { file: calibration.files.join(' + '), format: 'text', sha256: createHash('sha256').update(calibration.description).digest('hex'), tokens: calibration.tokens },
        samples: calibration.windows.length,
        seqLen: s.calibSeqLen,
        seed: s.seed,
      },
      { grams },
    );
    await grams.finish();
    for (const w of new Set(s.methods.map(weightingOf))) {
      if (w === 'tokens') continue;
      log(`collecting ${w}-weighted Gram matrices for the compressors`);
      const sink = new GramDirectorySink(gramsDirOf(w), c.hiddenSize, fingerprint);
      await collectRoutingStats(original, engine, calibration.windows, { dataset: { file: 'x', format: 'text', sha256: '0', tokens: calibration.tokens }, samples: calibration.windows.length, seqLen: s.calibSeqLen, seed: s.seed }, { grams: sink, gramWeighting: w });
      await sink.finish();
    }
    await writeRoutingStats(statsFile, stats);
    for (const w of stats.warnings) log(`warning: ${w}`);

    if (Object.keys(results.original.eval).length === 0) {
      log(`evaluating the original on ${sets.map((p) => `${p.set.label} (${p.windows.length} windows)`).join(', ')}`);
      const t0 = Date.now();
      results.original.eval = await evaluateAll(original, undefined, engine, sets, []);
      results.original.evalSeconds = (Date.now() - t0) / 1000;
      await assertModelUnchanged();
      log(`original: ${sets.map((p) => `${p.set.label} ${results.original.eval[p.set.key].perplexity.toFixed(3)}`).join(', ')} (${results.original.evalSeconds.toFixed(1)} s)`);
      tick();
      await writeOutputs(results, s);
    }

    const plan = s.retains.flatMap((retain) => s.methods.map((method) => ({ method, retain })));
    const todo = plan.filter((p) => !results.runs.some((r) => r.method === p.method && r.retain === p.retain));
    if (todo.length < plan.length) log(`reusing ${plan.length - todo.length} finished run(s) from ${jsonFile}`);
    let doneSeconds = 0;
    for (const [i, { method, retain }] of todo.entries()) {
      const label = `[${i + 1}/${todo.length}] ${method} γ=${retain}`;
      const dir = path.join(work, 'models', `${method}-${retain}`);
      const t0 = Date.now();
      let report: CompressionReport;
      try {
        report = await compress(original, parseRecipe(recipeFor(method, retain)), {
          out: dir,
          stats: statsFile,
          grams: gramsDirOf(weightingOf(method)),
          engine,
          evaluation: false,
          onProgress: (e) => {
            if (e.type === 'warning') log(`${label} warning: ${e.message}`);
          },
        });
      } catch (err) {
        log(`${label}: compression refused or failed: ${(err as Error).message}`);
        results.refused.push({ method, retain, reason: (err as Error).message });
        continue;
      }
      const compressSeconds = (Date.now() - t0) / 1000;
      const t1 = Date.now();
      const compressed = await loadCompressed(dir);
      let run: RunResult;
      try {
        const evals = await evaluateAll(compressed, original, engine, sets, s.klSets);
        const evalSeconds = (Date.now() - t1) / 1000;
        const error = await approximationError(original, compressed, engine, gramsDir, ['gate', 'up']);
        const r = report.params.reductions;
        run = {
          method,
          retain,
          keptGateUp: r.gateUp.kept,
          keptAllExperts: r.allExperts.kept,
          keptWholeModel: r.wholeModel.kept,
          compressSeconds,
          evalSeconds,
          residualEnergyRecovered: meanResidualRecovered(report),
          error,
          eval: evals,
          warnings: report.warnings,
        };
      } finally {
        await compressed.close();
        await rm(dir, { recursive: true, force: true });
      }
      await assertModelUnchanged();
      results.runs.push(run);
      tick();
      await writeOutputs(results, s);
      doneSeconds += (Date.now() - t0) / 1000;
      const eta = (doneSeconds / (i + 1)) * (todo.length - i - 1);
      log(
        `${label}: kept ${(100 * run.keptGateUp).toFixed(1)}% gate+up, compress ${compressSeconds.toFixed(1)} s, evaluate ${run.evalSeconds.toFixed(1)} s; ` +
          sets.map((p) => `${p.set.label} ${run.eval[p.set.key].perplexity.toFixed(3)}`).join(', ') +
          `; output err ${run.error.outputRel.toFixed(4)}; ETA ${(eta / 60).toFixed(1)} min`,
      );
    }
    tick();
    await writeOutputs(results, s);
    log(`done in ${((Date.now() - sweepStarted) / 1000 / 60).toFixed(1)} min: ${jsonFile}, ${path.join(s.out, 'perplexity-vs-retained.svg')}, ${s.resultsMd}`);
  } finally {
    engine.dispose();
    await original.close();
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`compare-methods: ${(err as Error).message}\n${USAGE}`);
  process.exit(2);
});
