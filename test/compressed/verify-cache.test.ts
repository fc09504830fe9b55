/**
 * verifyOutputFiles remembers, for this process, the files it found to match: an unchanged file
 * (same device, inode, size, modification and change times) is not hashed again, which is what
 * keeps a server's reloads of a large model from re-reading it; any change to the file is hashed
 * and refused as before; a file changed within two seconds of its hashing is never remembered
 * (a write in the same clock tick may leave its times unchanged); `reverify` hashes regardless.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IntegrityError, verifyOutputFiles, type HashProgress } from '../../src/compressed/verify.js';

let dir: string;
const files: Record<string, string> = {};
const SIZE = 300 * 1024; // several 64 KiB chunks: hashing reports progress more than once

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'verify-cache-'));
  for (const name of ['a.safetensors', 'b.safetensors']) {
    const bytes = Buffer.alloc(SIZE, name.charCodeAt(0));
    await writeFile(path.join(dir, name), bytes);
    files[name] = createHash('sha256').update(bytes).digest('hex');
  }
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** The progress calls of one verification: one per file when nothing is hashed. */
async function progressCalls(opts: { reverify?: boolean } = {}): Promise<HashProgress[]> {
  const calls: HashProgress[] = [];
  await verifyOutputFiles(dir, files, { ...opts, onProgress: (p) => calls.push({ ...p }) });
  return calls;
}

describe('verifyOutputFiles in one process', () => {
  it('hashes files changed less than two seconds ago every time', async () => {
    expect((await progressCalls()).length).toBeGreaterThan(2);
    expect((await progressCalls()).length).toBeGreaterThan(2);
  });

  it('hashes a settled file once, then trusts it while it is unchanged; reverify hashes again', async () => {
    await new Promise((r) => setTimeout(r, 2100));
    expect((await progressCalls()).length).toBeGreaterThan(2);
    const again = await progressCalls();
    expect(again.map((p) => p.file)).toEqual(['a.safetensors', 'b.safetensors']);
    expect(again.at(-1)).toMatchObject({ bytesDone: 2 * SIZE, bytesTotal: 2 * SIZE });
    expect((await progressCalls({ reverify: true })).length).toBeGreaterThan(2);
  }, 10_000);

  it('a byte changed in a trusted file is hashed and refused', async () => {
    const handle = await open(path.join(dir, 'b.safetensors'), 'r+');
    await handle.write(Buffer.from([0x5a]), 0, 1, 1000);
    await handle.close();
    await expect(verifyOutputFiles(dir, files)).rejects.toThrow(IntegrityError);
    await expect(verifyOutputFiles(dir, files)).rejects.toThrow(/b\.safetensors does not have the sha256 recorded/);
  });
});
