/** Edit the tensors of a single-file fixture (to break it on purpose) and write it back. */
import path from 'node:path';
import type { DType } from '../../src/io/dtype.js';
import { TensorStore } from '../../src/io/sharded.js';
import { writeSafetensors } from '../../src/io/safetensors-writer.js';

export interface RawTensor {
  name: string;
  dtype: DType;
  shape: number[];
  /** raw little-endian bytes */
  data: Uint8Array;
}

export async function rewriteModelFile(dir: string, edit: (tensors: RawTensor[]) => RawTensor[]): Promise<void> {
  const file = path.join(dir, 'model.safetensors');
  const store = await TensorStore.open(file);
  const tensors: RawTensor[] = [];
  try {
    for (const name of store.tensorNames()) {
      const t = store.tensor(name)!;
      tensors.push({ name, dtype: t.dtype, shape: [...t.shape], data: await store.readBytes(name) });
    }
  } finally {
    await store.close();
  }
  await writeSafetensors(file, edit(tensors), { format: 'pt' });
}
