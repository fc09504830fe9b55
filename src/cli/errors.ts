/**
 * One way for every command to fail: a clear message (or a JSON object with `--json`) and exit
 * status 2, never a stack trace. Unexpected exceptions keep their message but are labelled as such.
 */
export interface CliFailure {
  kind: string;
  message: string;
}

export function describeError(err: unknown): CliFailure {
  if (err instanceof Error) {
    const kind = (err as { kind?: unknown }).kind;
    return { kind: typeof kind === 'string' ? kind : err.name || 'Error', message: err.message };
  }
  return { kind: 'Error', message: String(err) };
}

/** Print the failure and exit with status 2. */
export function fail(err: unknown, json: boolean): never {
  const failure = describeError(err);
  if (json) process.stdout.write(JSON.stringify({ ok: false, error: failure }) + '\n');
  else process.stderr.write(`rfid-moe: ${failure.message}\n`);
  process.exit(2);
}
