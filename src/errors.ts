/**
 * The one base class of every error rfid-moe throws for bad input or a refused operation.
 *
 * - `kind` is the error class's name in PascalCase (`CheckpointError`, `RecipeError`, …): a
 *   stable, machine-readable tag that the CLI prints as `error.kind` with `--json`. Catch by
 *   class (`instanceof`) in code, match on `kind` across a process boundary.
 * - `variant`, where a class has several distinct failures, is a finer tag in the same PascalCase
 *   style (`CheckpointError` → `MissingConfig`, `SafetensorsError` → `HeaderTooSmall`).
 * - Messages speak of library options in backticks (`seqLen`, `stats`, `resume`), never of
 *   command-line flags: the CLI translates them to its flags (`--seq-len`, `--stats`, `--resume`).
 */
export abstract class RfidMoeError extends Error {
  abstract readonly kind: string;
  readonly variant?: string;

  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** True for every error of this library (any subclass of RfidMoeError). */
export function isRfidMoeError(err: unknown): err is RfidMoeError {
  return err instanceof RfidMoeError;
}
