/**
 * One live run per output directory: `<out>/.rfid-moe.lock`, created with O_EXCL, holds the pid,
 * hostname and start time of the run that owns the directory. A second run on the same directory
 * is refused with the owner's pid. A lock left by a run that died (its pid no longer exists on
 * this host, e.g. after kill -9) is taken over with a notice; one from another host is never
 * taken over, because its pid cannot be checked from here.
 */
import { open, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { LOCK_FILE } from './output/names.js';
import { OutputDirError } from './resume.js';

interface LockInfo {
  pid: number;
  hostname: string;
  started: string;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function readLock(file: string): Promise<LockInfo | undefined> {
  try {
    const v = JSON.parse(await readFile(file, 'utf8')) as Partial<LockInfo>;
    if (typeof v.pid === 'number' && typeof v.hostname === 'string') return { pid: v.pid, hostname: v.hostname, started: String(v.started ?? '?') };
  } catch {
    // unreadable or half-written: treated below
  }
  return undefined;
}

export interface OutputLock {
  release(): Promise<void>;
}

/**
 * Claims `out` (which must exist) for this process. `notice` receives the message when a stale
 * lock is taken over.
 */
export async function lockOutputDir(out: string, notice: (message: string) => void = () => undefined): Promise<OutputLock> {
  const file = path.join(out, LOCK_FILE);
  const me: LockInfo = { pid: process.pid, hostname: os.hostname(), started: new Date().toISOString() };
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const handle = await open(file, 'wx');
      try {
        await handle.writeFile(JSON.stringify(me) + '\n');
        await handle.sync();
      } finally {
        await handle.close();
      }
      let released = false;
      return {
        async release() {
          if (released) return;
          released = true;
          const current = await readLock(file);
          if (current?.pid === me.pid && current.hostname === me.hostname) await rm(file, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let owner = await readLock(file);
    if (!owner) {
      // a run that has just created the file may not have written it yet: look again shortly
      await new Promise((r) => setTimeout(r, 250));
      owner = await readLock(file);
    }
    if (owner && owner.hostname !== me.hostname) {
      throw new OutputDirError(
        `\`out\` ${out} is locked by a run on host ${owner.hostname} (pid ${owner.pid}, started ${owner.started}); wait for it to finish, or, if that run is dead, delete ${file}`,
      );
    }
    if (owner && alive(owner.pid) && owner.pid !== process.pid) {
      throw new OutputDirError(`\`out\` ${out} is in use by another rfid-moe run (pid ${owner.pid}, started ${owner.started}); wait for it to finish or choose another directory`);
    }
    if (owner?.pid === process.pid) {
      throw new OutputDirError(`\`out\` ${out} is already being written by this process (another compress call in progress); use a different directory`);
    }
    notice(`taking over the lock of a run that is no longer alive (${owner ? `pid ${owner.pid}, started ${owner.started}` : 'unreadable lock file'})`);
    await rm(file, { force: true });
  }
  throw new OutputDirError(`\`out\` ${out}: could not take the lock file ${file}; another run keeps claiming it`);
}
