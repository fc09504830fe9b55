/**
 * The source weights of one output shard (a decoder layer, or the tensors outside the layers), read
 * as the pipeline reaches them: their content hash, and a check that no value is NaN or ±Inf.
 *
 * Why per layer: hashing a 60 GB checkpoint up front would cost a full extra read before any
 * work. Instead each layer is hashed just before it is compressed (its bytes are then in the page
 * cache for the compression's own reads), and the hash is recorded in the progress file and, at
 * the end, in the `rfid_moe` block. A resumed run re-hashes the source of every layer it keeps
 * before writing anything, so weights that changed between the runs (a different fine-tune with
 * the same shapes) are refused instead of mixed into one output.
 *
 * The hash covers, for every tensor sorted by name: name, dtype, shape and raw bytes; it does not
 * depend on how the checkpoint is split into shard files. Memory: one tensor's bytes at a time.
 */
import { createHash } from 'node:crypto';
import { assertFiniteTensor } from '../checkpoint/finite.js';
import { decodeToF32, DTYPE_BITS, type DType } from '../io/dtype.js';
import type { TensorSource } from '../io/sharded.js';

/** Elements decoded at a time for the finiteness check (bounds the f32 copy to 16 MiB). */
const CHECK_CHUNK = 1 << 22;

const FLOAT_DTYPES = new Set<DType>(['F16', 'BF16', 'F32', 'F64', 'F8_E5M2', 'F8_E4M3', 'F8_E4M3FNUZ', 'F8_E5M2FNUZ']);

/** Hex sha256 of the tensors' content; throws NonFiniteError naming the layer and tensor. */
export async function scanSourceTensors(store: TensorSource, names: readonly string[]): Promise<string> {
  const hash = createHash('sha256');
  for (const name of [...names].sort()) {
    const t = store.tensor(name);
    if (!t) throw new Error(`tensor ${name} vanished from the checkpoint while it was being compressed`);
    const bytes = await store.readBytes(name);
    hash.update(JSON.stringify([name, t.dtype, t.shape]));
    hash.update(bytes);
    if (FLOAT_DTYPES.has(t.dtype)) {
      const width = DTYPE_BITS[t.dtype] / 8;
      for (let e = 0; e * width < bytes.length; e += CHECK_CHUNK) {
        const end = Math.min(bytes.length, (e + CHECK_CHUNK) * width);
        assertFiniteTensor(decodeToF32(t.dtype, bytes.subarray(e * width, end)), name, e);
      }
    }
  }
  return hash.digest('hex');
}
