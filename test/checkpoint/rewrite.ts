/** Edit a single-file fixture's tensors or config.json (to break it on purpose), and the error opening it then gives. */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';
import { CheckpointError } from '../../src/checkpoint/errors.js';
import { openCheckpoint } from '../../src/checkpoint/open.js';
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

/** Edit a fixture's config.json (parsed) and write it back. */
export async function editConfig(dir: string, edit: (c: Record<string, unknown>) => void): Promise<void> {
  const file = path.join(dir, 'config.json');
  const config = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
  edit(config);
  await writeFile(file, JSON.stringify(config));
}

/** The CheckpointError openCheckpoint throws for `dir` (fails the test if it opens). */
export async function openError(dir: string): Promise<CheckpointError> {
  const err = await openCheckpoint(dir).then(
    async (ckpt) => {
      await ckpt.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(CheckpointError);
  return err as CheckpointError;
}
