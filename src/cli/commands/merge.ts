/**
 * `rfid-moe merge <part>… --out <dir> [--model <dir>]`
 *
 * Assembles the partial outputs of a sharded compression (`compress --shard i/N` or `--layers`)
 * into the directory a one-process run writes. Refuses, before writing anything, parts of
 * different runs, a missing or doubled layer, an unfinished part and a modified shard.
 */
import type { Command } from 'commander';
import { parseEngineChoice } from '../../engine/index.js';
import { stderrProgress } from '../../compress/progress.js';
import { reportSummary } from '../../compress/report.js';
import { merge } from '../../compress/shard/merge.js';
import { parseInteger } from '../../tokens/cli-options.js';
import { fail } from '../errors.js';
import { addOptions, engineOptions } from '../shared-options.js';

interface MergeCliOptions {
  out: string;
  model?: string;
  evalSequences: string;
  eval: boolean;
  engine: string;
  threads?: string;
  json?: boolean;
  quiet?: boolean;
}

export function register(program: Command): void {
  addOptions(
    program
      .command('merge')
      .description('assemble the parts of a sharded compression (compress --shard i/N) into one compressed model, byte-identical to a one-process run')
      .argument('<parts...>', 'the --out directories of the shard tasks')
      .requiredOption('--out <dir>', 'output directory (new or empty)')
      .option('--model <dir>', 'the original model (default: the directory the parts record)')
      .option('--eval-sequences <n>', 'held-out sequences for the KL / top-1 check against the original', '16')
      .option('--no-eval', 'skip the KL / top-1 check'),
    engineOptions(),
  )
    .option('--json', 'print the report as JSON on stdout')
    .option('--quiet', 'no progress on stderr')
    .action(async (parts: string[], opts: MergeCliOptions) => {
      try {
        const report = await merge(parts, {
          out: opts.out,
          ...(opts.model ? { model: opts.model } : {}),
          engine: parseEngineChoice(opts.engine),
          threads: opts.threads === undefined ? undefined : parseInteger('--threads', opts.threads, 1),
          evaluation: { sequences: opts.eval ? parseInteger('--eval-sequences', opts.evalSequences, 0) : 0 },
          ...(opts.quiet ? {} : { onProgress: stderrProgress() }),
        });
        process.stdout.write(opts.json ? JSON.stringify({ ok: true, ...report }) + '\n' : reportSummary(report));
      } catch (err) {
        fail(err, opts.json ?? false);
      }
    });
}
