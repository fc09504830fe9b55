/**
 * The one error type of src/checkpoint. Its `variant` is a stable machine-readable tag (the CLI
 * prints it beside `kind: 'CheckpointError'` in `--json` output); `message` says what is wrong and
 * how to fix it.
 */
import { RfidMoeError } from '../errors.js';

export type CheckpointErrorVariant =
  /** the path does not exist or is not a directory */
  | 'NotFound'
  /** config.json is absent */
  | 'MissingConfig'
  /** config.json is not valid JSON or not a JSON object */
  | 'InvalidConfigJson'
  /** config.json has no model_type, or one no family handles */
  | 'UnknownModelType'
  /** config.json fails the family schema (the message names the key) */
  | 'InvalidConfig'
  /** generation_config.json is not valid JSON, or names end-of-sequence ids that are not token ids */
  | 'InvalidGenerationConfig'
  /** config.json declares quantized weights (quantization_config: FP8 blocks, GPTQ, AWQ, bitsandbytes …) */
  | 'Quantized'
  /** the directory holds no safetensors weights */
  | 'NoWeights'
  /** a shard file resolves outside the checkpoint directory */
  | 'ShardOutsideDir'
  /** tensors the layout expects are missing, misshapen, or of an undecodable dtype */
  | 'LayoutMismatch'
  /** a caller asked for something the checkpoint does not have (layer, expert, tensor) */
  | 'OutOfRange';

export class CheckpointError extends RfidMoeError {
  readonly kind = 'CheckpointError';
  override readonly variant: CheckpointErrorVariant;
  /** every problem found, when validation found several (the message shows the first ones) */
  readonly problems: readonly string[];

  constructor(variant: CheckpointErrorVariant, message: string, problems: readonly string[] = [], options?: { cause?: unknown }) {
    super(message, options);
    this.variant = variant;
    this.problems = problems;
  }
}
