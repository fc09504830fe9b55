#!/usr/bin/env node
/**
 * rfid-moe command line. Each command lives in its own module under ./commands and exports
 * `register(program)`; this file wires them together and owns the one error path: a parse error
 * (unknown option, missing argument, bad choice) and a failure inside a command both end in
 * `fail()`: exit status 2 and one message, a JSON object when `--json` appears anywhere on the
 * command line.
 */
import { Command, CommanderError, Help, type Option } from 'commander';
import { TOOL_VERSION } from '../version.js';
import { fail } from './errors.js';

const json = process.argv.slice(2).includes('--json');
let running: Command | undefined;

const program = new Command();
program
  .name('rfid-moe')
  .description('Compress Mixture-of-Experts language models (RFID-MoE).')
  .version(TOOL_VERSION)
  // `rfid-moe --json <command> …` means the same as `rfid-moe <command> … --json`
  .option('--json', 'print results and errors as JSON (same as the command\'s own --json)', false)
  .enablePositionalOptions()
  // settings inherited by every command added below
  .exitOverride()
  .configureOutput({ outputError: () => {} }) // fail() prints the one message
  .configureHelp({
    // commander shows only defaults it fills in itself; options whose default is decided at run
    // time carry it as text (common-options.ts `defaultText`), shown the same way
    optionDescription(option: Option): string {
      const base = Help.prototype.optionDescription.call(this, option);
      return option.defaultValue === undefined && option.defaultValueDescription ? `${base} (default: ${option.defaultValueDescription})` : base;
    },
  })
  .hook('preAction', (root, command) => {
    running = command;
    if (root.opts().json === true && command.options.some((o) => o.long === '--json')) command.setOptionValue('json', true);
  });

// Commands register themselves here, one import per command.
const commandModules: Array<() => Promise<{ register(program: Command): void }>> = [
  () => import('./commands/inspect.js'),
  () => import('./commands/doctor.js'),
  () => import('./commands/calibrate.js'),
  () => import('./commands/eval.js'),
  () => import('./commands/compress.js'),
  () => import('./commands/merge.js'),
  () => import('./commands/merge-stats.js'),
  () => import('./commands/allocate.js'),
  () => import('./commands/densify.js'),
  () => import('./commands/serve.js'),
  () => import('./commands/generate.js'),
];

for (const load of commandModules) (await load()).register(program);

try {
  await program.parseAsync(process.argv);
} catch (err) {
  // --help and --version end here too, with exit code 0
  if (err instanceof CommanderError && err.exitCode === 0) process.exit(0);
  if (err instanceof CommanderError && err.code === 'commander.help') {
    fail(new CommanderError(2, 'commander.missingCommand', 'no command given; run rfid-moe --help for the list'), json);
  }
  const command = running ?? commandNamed(process.argv[2]);
  fail(err, json, command);
}

function commandNamed(name: string | undefined): Command | undefined {
  return program.commands.find((c) => c.name() === name);
}
