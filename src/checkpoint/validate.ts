/**
 * Checks a checkpoint's tensors against what its config implies: every expected tensor exists,
 * has exactly the implied shape, and has a floating-point dtype that decodes to f32 (integer
 * dtypes are refused: they hold quantized codes, not weights). All problems are gathered;
 * the error's message shows the first few and `problems` holds them all.
 */
import { DTYPE_BITS, type DType } from '../io/dtype.js';
import { CheckpointError } from './errors.js';
import type { ExpectedTensor } from './expected.js';

export interface FoundTensor {
  dtype: DType;
  shape: readonly number[];
}

/** Whether the io layer can decode this dtype to f32 (whole-byte widths, not complex). */
export function isDecodableDType(dtype: DType): boolean {
  return DTYPE_BITS[dtype] % 8 === 0 && dtype !== 'C64';
}

const INTEGER_DTYPES = new Set<DType>(['BOOL', 'U8', 'I8', 'I16', 'U16', 'I32', 'U32', 'I64', 'U64']);

/** Whether the dtype holds integers (or booleans) rather than real numbers. */
export function isIntegerDType(dtype: DType): boolean {
  return INTEGER_DTYPES.has(dtype);
}

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** One line per problem, empty when the checkpoint matches its config. */
export function findLayoutProblems(expected: readonly ExpectedTensor[], lookup: (name: string) => FoundTensor | undefined): string[] {
  const problems: string[] = [];
  for (const want of expected) {
    const found = lookup(want.name);
    if (!found) {
      problems.push(`missing tensor ${want.name} (config.json implies shape ${shapeText(want.shape)})`);
      continue;
    }
    if (!sameShape(found.shape, want.shape))
      problems.push(`tensor ${want.name} has shape ${shapeText(found.shape)} but config.json implies ${shapeText(want.shape)}`);
    if (isIntegerDType(found.dtype)) {
      // integers decode to f32 without complaint, but as weights they are quantized codes (or
      // garbage): computing with them as real values would be silently wrong
      problems.push(`tensor ${want.name} has integer dtype ${found.dtype}: weights must be floating point (F32, F16, BF16); a quantized checkpoint needs dequantizing first`);
    } else if (!isDecodableDType(found.dtype)) problems.push(`tensor ${want.name} has dtype ${found.dtype}, which cannot be decoded to f32`);
  }
  return problems;
}

/** Throw CheckpointError('LayoutMismatch') when there are problems. */
export function assertNoLayoutProblems(problems: readonly string[], dir: string, familyLabel: string): void {
  if (problems.length === 0) return;
  const shown = problems.slice(0, 3).join('; ');
  const more = problems.length > 3 ? `; and ${problems.length - 3} more problem(s)` : '';
  throw new CheckpointError(
    'LayoutMismatch',
    `${dir} does not match its ${familyLabel} config.json: ${shown}${more}. Check that config.json belongs to these weights and that no shard is missing.`,
    problems,
  );
}
