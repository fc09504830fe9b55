/**
 * The one error type of src/checkpoint. `kind` is a stable machine-readable tag (the CLI prints it
 * in `--json` output); `message` says what is wrong and how to fix it.
 */
export type CheckpointErrorKind =
  /** the path does not exist or is not a directory */
  | 'not-found'
  /** config.json is absent */
  | 'missing-config'
  /** config.json is not valid JSON or not a JSON object */
  | 'invalid-config-json'
  /** config.json has no model_type, or one no family handles */
  | 'unknown-model-type'
  /** config.json fails the family schema (the message names the key) */
  | 'invalid-config'
  /** the directory holds no safetensors weights */
  | 'no-weights'
  /** a shard file resolves outside the checkpoint directory */
  | 'shard-outside-dir'
  /** tensors the layout expects are missing, misshapen, or of an undecodable dtype */
  | 'layout-mismatch'
  /** a caller asked for something the checkpoint does not have (layer, expert, tensor) */
  | 'out-of-range';

export class CheckpointError extends Error {
  readonly kind: CheckpointErrorKind;
  /** every problem found, when validation found several (the message shows the first ones) */
  readonly problems: readonly string[];

  constructor(kind: CheckpointErrorKind, message: string, problems: readonly string[] = [], options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CheckpointError';
    this.kind = kind;
    this.problems = problems;
  }
}
