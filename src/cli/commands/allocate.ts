/**
 * `rfid-moe allocate <spectra.json>… --out budgets.json`
 *
 * Phase 2 of model-wide allocation in a sharded run: one water-filling over the spectra that the
 * shard tasks wrote (`compress --shard i/N --spectra-out f`), giving every layer's rank budget;
 * the tasks then compress with `--rank-budgets budgets.json`. Refuses spectra of different runs,
 * a missing or doubled layer, before writing anything.
 */
import path from 'node:path';
import type { Command } from 'commander';
import { allocateFromSpectra, writeBudgetsFile } from '../../compress/shard/spectra.js';
import { addOptions, outputOptions } from '../common-options.js';

export function register(program: Command): void {
  addOptions(
    program
      .command('allocate')
      .description('model-wide rank allocation of a sharded run from the spectra its tasks wrote (compress --spectra-out)')
      .argument('<spectra...>', 'spectra files written by the compress --spectra-out tasks')
      .requiredOption('--out <budgets.json>', 'rank budgets to write, for compress --rank-budgets'),
    outputOptions('print the result as JSON on stdout'),
  ).action(async (files: string[], opts: { out: string; json: boolean; quiet: boolean }) => {
    const doc = await allocateFromSpectra(files);
    await writeBudgetsFile(opts.out, doc);
    const summary = { ok: true, out: path.resolve(opts.out), layers: doc.moeLayers.length, budgets: Object.keys(doc.budgets).length };
    process.stdout.write(opts.json ? JSON.stringify(summary) + '\n' : `wrote ${summary.out}: rank budgets of ${summary.budgets} layer/type pair(s) over ${summary.layers} MoE layers\n`);
  });
}
