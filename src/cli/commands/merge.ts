/**
 * `rfid-moe merge <part>… --out <dir> [--model <dir>]`
 *
 * Assembles the partial outputs of a sharded compression (`compress --shard i/N` or `--layers`)
 * into the directory a one-process run writes. Refuses, before writing anything, parts of
 * different runs, a missing or doubled layer, an unfinished part and a modified shard.
 */
import { Option, type Command } from 'commander';
import { parseEngineChoice } from '../../engine/index.js';
import { reportSummary } from '../../compress/report.js';
import { merge } from '../../compress/shard/merge.js';
import { parseInteger } from '../options.js';
import { CommandProgress } from '../progress.js';
import { addOptions, defaultText, type EngineCliOptions, engineOptions, type OutputCliOptions, outputOptions } from '../common-options.js';

interface MergeCliOptions extends EngineCliOptions, OutputCliOptions {
  out: string;
  model?: string;
  evalSequences: string;
  eval: boolean;
}

export function register(program: Command): void {
  addOptions(
    program
      .command('merge')
      .description('assemble the parts of a sharded compression (compress --shard i/N) into one compressed model, byte-identical to a one-process run')
      .argument('<parts...>', 'the --out directories of the shard tasks')
      .requiredOption('--out <dir>', 'output directory (new or empty)'),
    [
      defaultText(new Option('--model <dir>', 'the original model'), 'the directory the parts record'),
      new Option('--eval-sequences <n>', 'held-out sequences for the KL / top-1 check against the original').default('16'),
      new Option('--no-eval', 'skip the KL / top-1 check (default: the check runs)'),
    ],
    engineOptions(),
    outputOptions('print the report as JSON on stdout'),
  ).action(async (parts: string[], opts: MergeCliOptions) => {
    const progress = new CommandProgress('merge', [{ name: 'layer', steps: 0 }], { enabled: !opts.quiet });
    progress.begin('layer');
    const report = await merge(parts, {
      out: opts.out,
      ...(opts.model ? { model: opts.model } : {}),
      engine: parseEngineChoice(opts.engine),
      threads: opts.threads === undefined ? undefined : parseInteger('--threads', opts.threads, 1),
      evaluation: { sequences: opts.eval ? parseInteger('--eval-sequences', opts.evalSequences, 0) : 0 },
      onProgress: (e) => {
        if (e.type === 'layer-done') progress.step('layer', e.layer + 1, e.of);
        else if (e.type === 'finalize' || e.type === 'evaluation' || e.type === 'warning') progress.note(`${e.type === 'warning' ? 'warning: ' : ''}${e.message}`);
      },
    });
    progress.finish();
    process.stdout.write(opts.json ? JSON.stringify({ ok: true, ...report }) + '\n' : reportSummary(report));
  });
}
