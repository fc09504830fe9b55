/**
 * One way for every command to fail, parse errors included: one clear message on stderr (or, with
 * `--json`, `{"ok":false,"error":{"kind","variant"?,"message"}}` on stdout) and exit status 2,
 * never a stack trace.
 *
 * Library errors speak of options in backticks (`seqLen`, `stats`, `resume`); here they are
 * translated into the flags of the command that ran (`--seq-len`, `--stats`, `--resume`).
 */
import { CommanderError, type Command } from 'commander';
import { RfidMoeError } from '../errors.js';

export interface CliFailure {
  kind: string;
  variant?: string;
  message: string;
}

/** A command line commander could not parse (unknown option, missing argument, bad choice). */
export class UsageError extends RfidMoeError {
  readonly kind = 'UsageError';
  override readonly variant: string;
  constructor(variant: string, message: string) {
    super(message);
    this.variant = variant;
  }
}

/** `commander.unknownOption` → `UnknownOption` (the one naming style of error kinds). */
function pascalCase(code: string): string {
  return code
    .replace(/^commander\./, '')
    .replace(/(^|[.\-_])([a-z])/g, (_, __, c: string) => c.toUpperCase())
    .replace(/^[a-z]/, (c) => c.toUpperCase());
}

/** commander's error as a UsageError (its message without the "error: " prefix). */
export function usageError(err: CommanderError): UsageError {
  return new UsageError(pascalCase(err.code), err.message.replace(/^error:\s*/, ''));
}

/** Library option names whose flag is not their camelCase form. */
const LIBRARY_NAME_FLAGS: Record<string, string> = { storage: '--format' };

/**
 * Library option name → flag: the options `command` declares, then those of the other commands
 * (a hint may point to another command's option, e.g. compress's `--stats`), then the names
 * whose flag differs.
 */
export function optionFlags(command: Command | undefined): Map<string, string> {
  const flags = new Map<string, string>();
  const add = (c: Command) => {
    for (const option of c.options) if (option.long && !flags.has(option.attributeName())) flags.set(option.attributeName(), option.long);
  };
  if (command) add(command);
  for (const sibling of command?.parent?.commands ?? []) add(sibling);
  for (const [name, flag] of Object.entries(LIBRARY_NAME_FLAGS)) if (!flags.has(name)) flags.set(name, flag);
  return flags;
}

/** Replaces `name` (backticks included) by its flag wherever `name` is an option of the command. */
export function translateOptions(message: string, flags: Map<string, string>): string {
  return message.replace(/`([a-zA-Z][a-zA-Z0-9]*)`/g, (whole, name: string) => flags.get(name) ?? whole);
}

export function describeError(err: unknown, command?: Command): CliFailure {
  if (err instanceof CommanderError) err = usageError(err);
  if (err instanceof Error) {
    const kind = (err as { kind?: unknown }).kind;
    const variant = (err as { variant?: unknown }).variant;
    return {
      kind: typeof kind === 'string' ? kind : err.name || 'Error',
      ...(typeof variant === 'string' ? { variant } : {}),
      message: translateOptions(err.message, optionFlags(command)),
    };
  }
  return { kind: 'Error', message: String(err) };
}

/** Print the failure and exit with status 2. */
export function fail(err: unknown, json: boolean, command?: Command): never {
  const failure = describeError(err, command);
  if (json) process.stdout.write(JSON.stringify({ ok: false, error: failure }) + '\n');
  else process.stderr.write(`rfid-moe: ${failure.message}\n`);
  process.exit(2);
}
