/**
 * Atomic file replacement: write a sibling temp file, fsync it, rename it over the target. A
 * reader therefore sees either the old file or the complete new one, never a torn write, and a
 * crash leaves at most a stray `*.tmp` file (which .gitignore already ignores).
 */
import { randomBytes } from 'node:crypto';
import { open, rename, rm } from 'node:fs/promises';
import path from 'node:path';

/** A unique temp path in the same directory as `target` (same filesystem, so rename is atomic). */
export function tempPathFor(target: string): string {
  const dir = path.dirname(target);
  const base = path.basename(target);
  return path.join(dir, `.${base}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
}

/** Best-effort fsync of a directory so the rename itself survives a crash (not all platforms allow it). */
export async function fsyncDirectory(dir: string): Promise<void> {
  let handle;
  try {
    handle = await open(dir, 'r');
    await handle.sync();
  } catch {
    // Directories cannot be opened or synced on some platforms (Windows); the rename is still atomic.
  } finally {
    await handle?.close().catch(() => undefined);
  }
}

/** Move a finished temp file into place and make the rename durable. */
export async function commitTempFile(tempPath: string, target: string): Promise<void> {
  await rename(tempPath, target);
  await fsyncDirectory(path.dirname(target));
}

export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  const temp = tempPathFor(target);
  const handle = await open(temp, 'wx');
  try {
    await handle.writeFile(data);
    await handle.sync();
    await handle.close();
  } catch (err) {
    await handle.close().catch(() => undefined);
    await rm(temp, { force: true });
    throw err;
  }
  try {
    await commitTempFile(temp, target);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}

/**
 * fsyncs files written with `deferSync` (safetensors-writer.ts), then their directories: the step
 * before the commit point (a manifest) that vouches for them.
 */
export async function syncFiles(files: Iterable<string>): Promise<void> {
  const dirs = new Set<string>();
  for (const file of files) {
    const handle = await open(file, 'r');
    try {
      await handle.sync();
    } finally {
      await handle.close();
    }
    dirs.add(path.dirname(file));
  }
  for (const dir of dirs) await fsyncDirectory(dir);
}
