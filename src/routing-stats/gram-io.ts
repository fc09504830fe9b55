/**
 * One F64 Gram matrix per safetensors file, through src/io. A Gram matrix is symmetric, so only its
 * upper triangle is stored, row by row (tensor "gram_upper", [H(H+1)/2]): half the bytes of the
 * whole matrix, which the default recipe writes for every routed expert of every layer (128 × 48 ×
 * 32 MiB whole at Qwen3-30B-A3B's shape). Files of the whole matrix (tensor "gram", [H, H]), as
 * earlier builds wrote them, are still read.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { parseSafetensorsBuffer } from '../io/safetensors-reader.js';
import { writeSafetensors as writeTensors } from '../io/safetensors-writer.js';
import { RoutingStatsError } from './schema.js';

/** Values of an H × H matrix's upper triangle, the diagonal included. */
export function packedTriangleLength(hidden: number): number {
  return (hidden * (hidden + 1)) / 2;
}

/** The upper triangle of a symmetric H × H row-major matrix, row by row. */
export function packUpperTriangle(gram: Float64Array, hidden: number): Float64Array {
  const packed = new Float64Array(packedTriangleLength(hidden));
  for (let i = 0, at = 0; i < hidden; i++) {
    packed.set(gram.subarray(i * hidden + i, (i + 1) * hidden), at);
    at += hidden - i;
  }
  return packed;
}

/** Side of the tiles the lower triangle is mirrored in: a tile's rows and columns stay in cache. */
const MIRROR_TILE = 64;

/**
 * The whole symmetric matrix from its packed upper triangle (packUpperTriangle's inverse): each
 * row's upper part copied as it lies, then the lower triangle mirrored tile by tile. (Writing each
 * value's mirror as it was read strode a whole row apart per value: 34 s of a 211 s layer of
 * factorisation at hidden 2048, which reads each expert's Gram matrix several times.)
 */
export function unpackUpperTriangle(packed: Float64Array, hidden: number): Float64Array {
  const gram = new Float64Array(hidden * hidden);
  for (let i = 0, at = 0; i < hidden; i++) {
    gram.set(packed.subarray(at, at + hidden - i), i * hidden + i);
    at += hidden - i;
  }
  for (let i0 = 0; i0 < hidden; i0 += MIRROR_TILE) {
    const i1 = Math.min(hidden, i0 + MIRROR_TILE);
    for (let j0 = 0; j0 <= i0; j0 += MIRROR_TILE) {
      const j1 = Math.min(hidden, j0 + MIRROR_TILE);
      // lower entries (i, j), j < i, of this tile from their upper mirrors (j, i)
      for (let i = i0; i < i1; i++) {
        const row = i * hidden;
        for (let j = j0, end = Math.min(j1, i); j < end; j++) gram[row + j] = gram[j * hidden + i];
      }
    }
  }
  return gram;
}

/** `deferSync`: renamed into place unsynced, for a caller that syncs the files before its manifest (WriterOptions). */
export async function writeGramFile(file: string, gram: Float64Array, hidden: number, metadata: Record<string, string>, opts: { deferSync?: boolean } = {}): Promise<void> {
  const packed = packUpperTriangle(gram, hidden);
  const bytes = new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength);
  await writeTensors(file, [{ name: 'gram_upper', dtype: 'F64', shape: [packed.length], data: bytes }], metadata, opts);
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
  const upper = parsed.tensors.get('gram_upper');
  const whole = parsed.tensors.get('gram');
  const entry = upper ?? whole;
  if (!entry || entry.dtype !== 'F64') throw new RoutingStatsError(`${file} holds no F64 tensor "gram_upper" or "gram"; it is not a Gram matrix written by calibration (\`grams\`)`);
  const hidden = upper ? (Math.sqrt(8 * entry.elementCount + 1) - 1) / 2 : entry.shape[0];
  if (!Number.isInteger(hidden) || (upper ? entry.shape.length !== 1 : entry.shape.length !== 2 || entry.shape[1] !== hidden)) {
    throw new RoutingStatsError(`${file}: tensor "${upper ? 'gram_upper' : 'gram'}" has shape [${entry.shape.join(', ')}], which is not ${upper ? "an H × H matrix's upper triangle" : 'square'}; the file is damaged: calibrate again with \`grams\``);
  }
  const start = buffer.byteOffset + parsed.dataStart + entry.dataOffsets[0];
  // a view where the values lie 8-byte aligned in the file buffer (the writer pads its header so);
  // a copy otherwise. A whole matrix is returned as a copy: the caller keeps it, not the file.
  const aligned = start % 8 === 0;
  const values = aligned ? new Float64Array(buffer.buffer, start, entry.elementCount) : new Float64Array(entry.elementCount);
  if (!aligned) new Uint8Array(values.buffer).set(buffer.subarray(start - buffer.byteOffset, start - buffer.byteOffset + entry.byteLength));
  return { data: upper ? unpackUpperTriangle(values, hidden) : aligned ? values.slice() : values, metadata: parsed.metadata };
}
