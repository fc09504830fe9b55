/**
 * The one error type of the safetensors layer (`kind: 'SafetensorsError'`, like every rfid-moe
 * error a subclass of RfidMoeError).
 *
 * `variant` reuses the variant names of the upstream Rust `SafeTensorError` wherever a variant
 * exists, so a rejection here can be compared one-to-one with the reference implementation (and
 * with the golden manifest). Kinds that upstream does not have (sharded indexes, decoding, the
 * writer's bookkeeping) are named in the same style.
 */

import { RfidMoeError } from '../errors.js';

/** Variant names of upstream `safetensors::SafeTensorError`. */
export type UpstreamSafetensorsErrorKind =
  | 'HeaderTooSmall'
  | 'HeaderTooLarge'
  | 'InvalidHeaderLength'
  | 'InvalidHeader'
  | 'InvalidHeaderStart'
  | 'InvalidHeaderDeserialization'
  | 'InvalidOffset'
  | 'ValidationOverflow'
  | 'MisalignedSlice'
  | 'TensorInvalidInfo'
  | 'MetadataIncompleteBuffer'
  | 'TensorNotFound'
  | 'InvalidTensorView'
  | 'IoError';

/** Kinds that only this implementation raises. */
export type LocalSafetensorsErrorKind =
  /** A dtype this code cannot decode to f32 (complex, sub-byte floats) or encode to. */
  | 'UnsupportedDType'
  /** A row range outside the tensor's 2-D view. */
  | 'SliceOutOfRange'
  /** `model.safetensors.index.json` is malformed or points outside its directory. */
  | 'InvalidShardIndex'
  /** A shard named by the index (or the checkpoint itself) does not exist. */
  | 'ShardNotFound'
  /** The writer was finished before every planned tensor was written, or misused. */
  | 'IncompleteWrite'
  /** A write plan that cannot be serialised (bad shape, duplicate name, unknown dtype). */
  | 'InvalidPlan';

export type SafetensorsErrorKind = UpstreamSafetensorsErrorKind | LocalSafetensorsErrorKind;

export interface SafetensorsErrorContext {
  file?: string;
  tensor?: string;
  cause?: unknown;
}

export class SafetensorsError extends RfidMoeError {
  readonly kind = 'SafetensorsError';
  override readonly variant: SafetensorsErrorKind;
  readonly file?: string;
  readonly tensor?: string;
  /** The message without the file / tensor prefix and kind suffix. */
  readonly detail: string;

  constructor(kind: SafetensorsErrorKind, detail: string, context: SafetensorsErrorContext = {}) {
    super(SafetensorsError.compose(kind, detail, context), context.cause === undefined ? undefined : { cause: context.cause });
    this.variant = kind;
    this.detail = detail;
    if (context.file !== undefined) this.file = context.file;
    if (context.tensor !== undefined) this.tensor = context.tensor;
  }

  /** The same error located in `file` / `tensor` (fields already set are kept). */
  withContext(context: { file?: string; tensor?: string }): SafetensorsError {
    return new SafetensorsError(this.variant, this.detail, {
      file: this.file ?? context.file,
      tensor: this.tensor ?? context.tensor,
      cause: this,
    });
  }

  /** "<file>: tensor '<name>': <detail> [<Kind>]" — every part that is known. */
  private static compose(kind: SafetensorsErrorKind, detail: string, context: SafetensorsErrorContext): string {
    const where: string[] = [];
    if (context.file !== undefined) where.push(context.file);
    if (context.tensor !== undefined) where.push(`tensor ${JSON.stringify(context.tensor)}`);
    return `${where.length > 0 ? where.join(': ') + ': ' : ''}${detail} [${kind}]`;
  }
}

export function isSafetensorsError(err: unknown, kind?: SafetensorsErrorKind): err is SafetensorsError {
  return err instanceof SafetensorsError && (kind === undefined || err.variant === kind);
}
