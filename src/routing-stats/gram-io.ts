/** One F64 Gram matrix per safetensors file (tensor "gram" [H, H]), through src/io. */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parseSafetensorsBuffer } from '../io/safetensors-reader.js';
import { writeSafetensors as writeTensors } from '../io/safetensors-writer.js';
import { RoutingStatsError } from './schema.js';

export async function writeGramFile(file: string, gram: Float64Array, hidden: number, metadata: Record<string, string>): Promise<void> {
  const bytes = new Uint8Array(gram.buffer, gram.byteOffset, gram.byteLength);
  await writeTensors(file, [{ name: 'gram', dtype: 'F64', shape: [hidden, hidden], data: bytes }], metadata);
}

export async function readGramFile(file: string): Promise<{ data: Float64Array; metadata: Record<string, string> | null }> {
  return decodeGramFile(file, await readFile(file));
}

/** The same, synchronously (the per-layer algorithm asks for one Gram matrix at a time). */
export function readGramFileSync(file: string): { data: Float64Array; metadata: Record<string, string> | null } {
  return decodeGramFile(file, readFileSync(file));
}

function decodeGramFile(file: string, buffer: Buffer): { data: Float64Array; metadata: Record<string, string> | null } {
  const parsed = parseSafetensorsBuffer(new Uint8Array(buffer.buffer, buffer.byteOffset, buffer.byteLength), file);
  const entry = parsed.tensors.get('gram');
  if (!entry || entry.dtype !== 'F64') throw new RoutingStatsError(`${file} holds no F64 tensor "gram"; it is not a Gram matrix written by calibration (\`grams\`)`);
  const start = parsed.dataStart + entry.dataOffsets[0];
  // copy: the file buffer's offset need not be 8-byte aligned
  const data = new Float64Array(entry.elementCount);
  new Uint8Array(data.buffer).set(buffer.subarray(start, start + entry.byteLength));
  return { data, metadata: parsed.metadata };
}
