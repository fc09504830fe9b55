/** Per-suite scratch directories under the OS temp dir, removed after the suite. */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';

export async function makeScratch(prefix: string): Promise<{ dir: string; sub: (name: string) => string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `rfid-moe-${prefix}-`));
  return { dir, sub: (name) => path.join(dir, name), cleanup: () => rm(dir, { recursive: true, force: true }) };
}
