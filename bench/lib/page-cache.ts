/**
 * Loads from the disk for the load benchmarks: the page cache's copy of a checkpoint's files
 * dropped first. `dd iflag=nocache count=0` asks the kernel to drop a whole file's cached pages
 * (posix_fadvise DONTNEED, which Node does not expose); no root is needed, and pages a process
 * still maps stay.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';

/** Drops the cached pages of every .safetensors file in `dir`. */
export function dropCachedPages(dir: string): void {
  for (const f of readdirSync(dir)) {
    if (!f.endsWith('.safetensors')) continue;
    const r = spawnSync('dd', [`if=${path.join(dir, f)}`, 'iflag=nocache', 'count=0', 'status=none']);
    if (r.status !== 0) throw new Error(`could not drop the cached pages of ${f}: ${r.stderr.toString().trim()}`);
  }
}
