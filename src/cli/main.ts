#!/usr/bin/env node
/**
 * rfid-moe command line. Each command lives in its own module under ./commands and exports
 * `register(program)`; this file only wires them together.
 */
import { Command } from 'commander';
import { TOOL_VERSION } from '../version.js';

const program = new Command();
program
  .name('rfid-moe')
  .description('Compress Mixture-of-Experts language models (RFID-MoE).')
  .version(TOOL_VERSION);

// Commands register themselves here, one import per command.
const commandModules: Array<() => Promise<{ register(program: Command): void }>> = [
  () => import('./commands/inspect.js'),
  () => import('./commands/doctor.js'),
  () => import('./commands/calibrate.js'),
  () => import('./commands/eval.js'),
  () => import('./commands/compress.js'),
  () => import('./commands/serve.js'),
  () => import('./commands/generate.js'),
];

for (const load of commandModules) (await load()).register(program);

await program.parseAsync(process.argv);
