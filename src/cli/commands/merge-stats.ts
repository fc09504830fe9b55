/**
 * `rfid-moe merge-stats <part.json>… --out stats.json [--grams DIR]`
 *
 * Adds up the parts of a sharded calibration (`calibrate --shard i/N`): counts exactly (the file is
 * byte-identical to a one-process run's), Gram matrices in f64. Refuses parts of another model,
 * dataset, sequence length, seed or sharding before writing anything.
 */
import path from 'node:path';
import { Option, type Command } from 'commander';
import { mergeGrams, mergeRoutingStats, type StatsPart } from '../../routing-stats/merge.js';
import { loadRoutingStats, RoutingStatsError, writeRoutingStats } from '../../routing-stats/schema.js';
import { addOptions, defaultText, outputOptions } from '../common-options.js';

interface MergeStatsOptions {
  out: string;
  grams?: string;
  json?: boolean;
  quiet?: boolean;
}

export function register(program: Command): void {
  addOptions(
    program
      .command('merge-stats')
      .description('add up the parts of a sharded calibration (calibrate --shard i/N) into one statistics file, identical to a one-process run')
      .argument('<parts...>', 'statistics files written by the calibrate --shard tasks')
      .requiredOption('--out <stats.json>', 'merged statistics file to write (new, or a statistics file to replace)'),
    [defaultText(new Option('--grams <dir>', "also sum the parts' Gram matrices (written with calibrate --grams) into this new directory"), 'not merged')],
    outputOptions('print the result as JSON on stdout'),
  ).action(async (files: string[], opts: MergeStatsOptions) => {
        const parts: StatsPart[] = [];
        for (const file of files) parts.push({ source: file, stats: await loadRoutingStats(file) });
        const merged = mergeRoutingStats(parts);
        if (opts.grams === undefined && parts.some((p) => p.stats.shard?.grams)) {
          if (!opts.quiet) process.stderr.write('note: the parts hold Gram matrices; pass --grams <dir> to merge them too (needed for whitening)\n');
        }
        if (parts.some((p) => path.resolve(p.source) === path.resolve(opts.out))) throw new RoutingStatsError(`--out ${opts.out} is one of the parts; write the merged file elsewhere`);
        if (opts.grams !== undefined) {
          await mergeGrams(parts, opts.grams, (done, of) => {
            if (!opts.quiet && (done === of || done % 16 === 0)) process.stderr.write(`merge-stats: Gram matrices ${done}/${of}\n`);
          });
        }
        await writeRoutingStats(opts.out, merged);
        const summary = { ok: true, out: path.resolve(opts.out), parts: parts.length, tokens: merged.calibration.tokens, grams: opts.grams ? path.resolve(opts.grams) : null, warnings: merged.warnings.length };
        if (opts.json) process.stdout.write(JSON.stringify(summary) + '\n');
        else process.stdout.write(`wrote ${summary.out}: ${parts.length} parts, ${summary.tokens} tokens${summary.grams ? `, Gram matrices in ${summary.grams}` : ''}, ${summary.warnings} warning(s)\n`);
  });
}
