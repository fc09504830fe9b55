/**
 * Memory readings for the child scripts of the process-wide tests (test/helpers/child-node.ts),
 * which import this file by its path from the repository root.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** MiB of this process's anonymous memory in transparent huge pages (Linux smaps_rollup). */
export function anonHugePagesMiB(): number {
  const m = /AnonHugePages:\s+(\d+) kB/.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'));
  if (!m) throw new Error('no AnonHugePages line in /proc/self/smaps_rollup');
  return Number(m[1]) / 1024;
}

/** RssFile of /proc/self/status: this process's resident pages that belong to files (mapped checkpoints among them), in bytes. */
export function rssFileBytes(): number {
  const m = /RssFile:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  if (!m) throw new Error('no RssFile line in /proc/self/status');
  return Number(m[1]) * 1024;
}

/**
 * The RSS once it has fallen `dropBytes` below `fromRss`, or after 2 s: V8 may free collected
 * buffers on a background thread, after releaseGarbage() has returned.
 */
export async function rssAfterRelease(fromRss: number, dropBytes: number): Promise<number> {
  let rss = process.memoryUsage().rss;
  for (let t = 0; t < 200 && fromRss - rss < dropBytes; t++) {
    await sleep(10);
    rss = process.memoryUsage().rss;
  }
  return rss;
}
