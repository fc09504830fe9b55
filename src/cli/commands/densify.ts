/**
 * `rfid-moe densify <factored-dir> --out <dir> [--engine e] [--threads n] [--json] [--quiet]`
 *
 * A factored rfid-moe output (which Hugging Face loaders refuse: they cannot run factored experts)
 * turned into a dense one that any transformers client loads, without compressing again: every
 * compressed expert matrix is rebuilt as A·B + P·η from the stored factors. Progress with ETA on
 * stderr, the result on stdout.
 */
import type { Command } from 'commander';
import { densify } from '../../compressed/densify.js';
import { parseEngineChoice } from '../../engine/index.js';
import { parseInteger } from '../options.js';
import { CommandProgress } from '../progress.js';
import { addOptions, type EngineCliOptions, engineOptions, type OutputCliOptions, outputOptions } from '../common-options.js';

interface DensifyCliOptions extends EngineCliOptions, OutputCliOptions {
  out: string;
}

export function register(program: Command): void {
  addOptions(
    program
      .command('densify')
      .description('turn a factored rfid-moe output into a dense checkpoint that Hugging Face transformers loads (no re-compression)')
      .argument('<factored>', 'factored output directory written by `rfid-moe compress`')
      .requiredOption('--out <dir>', 'new (or empty) directory for the dense checkpoint'),
    engineOptions(),
    outputOptions('print the result as JSON on stdout'),
  ).action(async (dir: string, opts: DensifyCliOptions) => {
    const threads = opts.threads === undefined ? undefined : parseInteger('--threads', opts.threads, 1);
    const progress = new CommandProgress('densify', [{ name: 'shard', steps: 0 }], { enabled: !opts.quiet });
    progress.begin('shard');
    const result = await densify(dir, {
      out: opts.out,
      engine: parseEngineChoice(opts.engine),
      threads,
      onProgress: (p) => progress.step('shard', p.shard + 1, p.of, p.file),
    });
    progress.finish();
    process.stdout.write(
      opts.json
        ? JSON.stringify({ ok: true, ...result }) + '\n'
        : `dense checkpoint written to ${result.out}: ${result.shards} shard(s), ${result.reconstructed} expert matrices reconstructed in ${result.seconds.toFixed(1)} s\n`,
    );
  });
}
