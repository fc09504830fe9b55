/**
 * `rfid-moe eval <model> --dataset <file> [--seq-len L] [--max-windows N] [--reference <model>]
 *   [--matmul-activations f32|bf16] [--json]`
 *
 * Perplexity by docs/method.md's protocol (text joined and tokenized once without BOS, consecutive
 * non-overlapping windows, mean NLL over every predicted token), the number of tokens
 * evaluated, and with --reference the reference's perplexity, the mean KL(P_ref ‖ P_model) and
 * the top-1 agreement of next-token distributions. Progress on stderr, results on stdout. With
 * --matmul-activations bf16 the weights stored as BF16 are held so and multiplied with activations
 * rounded to BF16 (model and reference alike): the quality that mode gives.
 */
import path from 'node:path';
import { Option, type Command } from 'commander';
import { openModel } from '../../compressed/open-model.js';
import { withFiniteChecks } from '../../checkpoint/finite.js';
import { stderrHashProgress } from '../../compressed/verify.js';
import type { Checkpoint } from '../../checkpoint/types.js';
import { createEngine, parseEngineChoice } from '../../engine/index.js';
import { evaluateWindows, type EvaluationResult } from '../../eval/evaluate.js';
import { checkEvalSeqLen, defaultEvalSeqLen } from '../../eval/seq-len.js';
import { assertRunnable } from '../../runtime/checkpoint-weights.js';
import type { DatasetFormat } from '../../tokens/dataset.js';
import { tokenizeDataset } from '../../tokens/prepare.js';
import { evaluationWindows } from '../../tokens/windows.js';
import { parseInteger, parseMatmulActivations } from '../options.js';
import { CommandProgress } from '../progress.js';
import { addOptions, datasetTextOptions, defaultText, type EngineCliOptions, engineOptions, matmulActivationsOption, type MatmulCliOptions, type OutputCliOptions, outputOptions } from '../common-options.js';

interface EvalCliOptions extends EngineCliOptions, OutputCliOptions, MatmulCliOptions {
  dataset: string;
  seqLen?: string;
  maxWindows?: string;
  reference?: string;
  tokenizer?: string;
  datasetFormat: DatasetFormat | 'auto';
  textField: string;
  batchTokens: string;
}

export function register(program: Command): void {
  addOptions(
    program
      .command('eval')
      .description('perplexity on a dataset, and KL / top-1 agreement against a reference model')
      .argument('<model>', 'checkpoint directory')
      .requiredOption('--dataset <file>', 'evaluation text: plain text, .jsonl, or WikiText .raw')
      .option('--batch-tokens <n>', 'tokens per layer-by-layer pass (bounds activation memory)', '16384'),
    [
      defaultText(new Option('--seq-len <L>', 'tokens per window'), "2048, or the model's max_position_embeddings when shorter"),
      defaultText(new Option('--max-windows <n>', 'evaluate only the first n windows'), 'every window'),
      defaultText(new Option('--reference <model>', 'reference checkpoint (e.g. the uncompressed model) for KL and top-1 agreement'), 'none'),
    ],
    datasetTextOptions('tokenizer.json to tokenize the dataset with'),
    engineOptions(),
    matmulActivationsOption(),
    outputOptions('print the result as JSON on stdout'),
  ).action(async (model: string, opts: EvalCliOptions) => evaluate(model, opts));
}

async function open(dir: string, quiet: boolean): Promise<Checkpoint> {
  // an rfid-moe output (config.json with an rfid_moe block) runs its factored experts directly
  // (after every file is checked against its recorded sha256; weights are checked for NaN/Inf)
  const ckpt = withFiniteChecks(await openModel(dir, quiet ? {} : { onVerifyProgress: stderrHashProgress() }));
  try {
    assertRunnable(ckpt);
  } catch (err) {
    await ckpt.close();
    throw err;
  }
  return ckpt;
}

async function evaluate(model: string, opts: EvalCliOptions): Promise<void> {
  const maxWindows = opts.maxWindows === undefined ? undefined : parseInteger('--max-windows', opts.maxWindows, 1);
  const batchTokens = parseInteger('--batch-tokens', opts.batchTokens, 1);
  const format = opts.datasetFormat;
  const engineChoice = parseEngineChoice(opts.engine);
  const threads = opts.threads === undefined ? undefined : parseInteger('--threads', opts.threads, 1);
  const matmulActivations = parseMatmulActivations(opts.matmulActivations);
  const progress = new CommandProgress('eval', [{ name: 'layer', steps: 0 }], { enabled: !opts.quiet });
  const log = (line: string) => progress.note(line);

  const ckpt = await open(model, opts.quiet ?? false);
  const reference = opts.reference ? await open(opts.reference, opts.quiet ?? false).catch(async (err) => {
    await ckpt.close();
    throw err;
  }) : undefined;
  try {
    const seqLen = opts.seqLen === undefined ? defaultEvalSeqLen(ckpt.config) : parseInteger('--seq-len', opts.seqLen, 2);
    checkEvalSeqLen(ckpt.config, seqLen);
    const data = await tokenizeDataset(opts.tokenizer ?? model, opts.dataset, { format, textField: opts.textField });
    const windows = evaluationWindows(data.ids, seqLen, maxWindows);
    log(`dataset: ${data.ids.length} tokens (${data.dataset.format}), ${windows.length} window(s) of ${seqLen}`);
    const { engine, notice } = await createEngine(engineChoice, { threads, matmulActivations });
    log(notice);
    try {
      const started = Date.now();
      progress.begin('layer');
      // every pass runs the model's layers, then (with --reference) the reference's: one stage of
      // passes × layers × models steps, so the ETA covers the whole evaluation
      let stepsDone = 0;
      const result = await evaluateWindows(ckpt, engine, windows, reference, {
        batchTokens,
        onProgress: (p) => {
          const steps = p.passes * p.layer.numLayers * (reference ? 2 : 1);
          progress.step('layer', ++stepsDone, steps, `(${p.model}, pass ${p.pass + 1}/${p.passes})`);
        },
      });
      progress.finish();
      const report = {
        ok: true,
        modelDir: path.resolve(model),
        referenceDir: opts.reference ? path.resolve(opts.reference) : null,
        dataset: { file: path.resolve(opts.dataset), format: data.dataset.format, sha256: data.dataset.sha256, tokens: data.ids.length },
        seconds: (Date.now() - started) / 1000,
        // which engine ran: with --engine auto a missing native addon (e.g. mid-rebuild) silently means the ~10x slower ts engine
        engine: engine.describe(),
        ...result,
      };
      process.stdout.write(opts.json ? JSON.stringify(report) + '\n' : formatReport(result));
    } finally {
      engine.dispose();
    }
  } finally {
    await ckpt.close();
    await reference?.close();
  }
}

function formatReport(r: EvaluationResult): string {
  const lines = [`perplexity ${r.model.perplexity.toFixed(4)} (mean NLL ${r.model.meanNll.toFixed(6)}) over ${r.model.tokens} predicted tokens in ${r.model.windows} window(s) of ${r.model.seqLen}`];
  if (r.reference && r.comparison) {
    const diff = r.model.perplexity - r.reference.perplexity;
    lines.push(`reference perplexity ${r.reference.perplexity.toFixed(4)} (difference ${diff >= 0 ? '+' : ''}${diff.toFixed(4)}, ${((100 * diff) / r.reference.perplexity).toFixed(2)}%)`);
    lines.push(`mean KL(reference ‖ model) ${r.comparison.meanKl.toExponential(4)} nats, top-1 agreement ${(100 * r.comparison.top1Agreement).toFixed(2)}%`);
  }
  return lines.join('\n') + '\n';
}
