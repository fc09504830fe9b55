/**
 * Integrity of a compressed output directory: the `rfid_moe` block of config.json records the
 * sha256 of every file the model is made of (each shard, the index, the copied tokenizer files,
 * the routing statistics), and `verifyOutputFiles` checks them. A flipped byte, a truncated or a
 * missing shard is refused with the file's name, before anything reads a tensor from it.
 *
 * Hashing streams each file (64 KiB reads, never a whole-file buffer), so a 60 GB output costs
 * one sequential read (minutes on a disk); `onProgress` reports bytes done for a progress line.
 * Callers that trust a directory they just wrote can skip it (`verifyHashes: false` in
 * loadCompressed).
 *
 * A file this process has already found to match, and that is unchanged since (same device,
 * inode, size, and modification and change times to the nanosecond), is not hashed again: a server
 * reloads its models many times, and re-hashing a 60 GB model would add a minute to each cold
 * start. As git does with "racily clean" files, a file modified less than two seconds before it
 * was hashed is not remembered, since a write in the same clock tick can leave its times as they
 * were. `reverify: true` hashes regardless.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import type { BigIntStats } from 'node:fs';
import path from 'node:path';
import { RfidMoeError } from '../errors.js';

export class IntegrityError extends RfidMoeError {
  readonly kind = 'IntegrityError';
}

export interface HashProgress {
  file: string;
  bytesDone: number;
  bytesTotal: number;
}

export interface VerifyOptions {
  /** called after each chunk with the bytes hashed so far over all files */
  onProgress?(p: HashProgress): void;
  /** hash every file even if this process verified it unchanged before */
  reverify?: boolean;
}

/** Files this process found to match their recorded sha256: absolute path → identity and hash. */
const verified = new Map<string, { identity: string; sha256: string }>();

/** Only files whose last change is at least this much older than their hashing are remembered. */
const SETTLED_NS = 2_000_000_000n;

const identityOf = (s: BigIntStats) => `${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;

/** Hex sha256 of a file's bytes, streamed. `onBytes` receives each chunk's length. */
export async function sha256OfFile(file: string, onBytes?: (n: number) => void): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1 << 16 })) {
    hash.update(chunk as Buffer);
    onBytes?.((chunk as Buffer).length);
  }
  return hash.digest('hex');
}

/** sha256 of each named file of `dir` (names relative to dir), in the given order. */
export async function hashFiles(dir: string, names: readonly string[], opts: VerifyOptions = {}): Promise<Record<string, string>> {
  const sizes = await Promise.all(names.map(async (n) => (await stat(path.join(dir, n))).size));
  const total = sizes.reduce((a, b) => a + b, 0);
  let done = 0;
  const out: Record<string, string> = {};
  for (const name of names) {
    out[name] = await sha256OfFile(path.join(dir, name), (n) => {
      done += n;
      opts.onProgress?.({ file: name, bytesDone: done, bytesTotal: total });
    });
  }
  return out;
}

/** Shard files the directory's safetensors index names (empty when there is no index). */
async function indexedShards(dir: string): Promise<string[]> {
  let text: string;
  try {
    text = await readFile(path.join(dir, 'model.safetensors.index.json'), 'utf8');
  } catch {
    return [];
  }
  try {
    const map = (JSON.parse(text) as { weight_map?: Record<string, string> }).weight_map ?? {};
    return [...new Set(Object.values(map))].sort();
  } catch {
    throw new IntegrityError(`${dir}/model.safetensors.index.json is not valid JSON; the output is damaged — recompress the model or copy the directory again`);
  }
}

/**
 * Checks every file recorded in `files` (name → hex sha256) against the directory's bytes, and that
 * every shard the index names is recorded. Throws IntegrityError naming the first bad file.
 */
export async function verifyOutputFiles(dir: string, files: Record<string, string>, opts: VerifyOptions = {}): Promise<void> {
  const fix = 'the output is damaged or incomplete: recompress the model, or copy the whole directory again';
  const names = Object.keys(files).sort();
  for (const name of names) {
    const rel = path.relative(dir, path.resolve(dir, name));
    if (rel === '' || rel.startsWith('..') || path.isAbsolute(rel)) throw new IntegrityError(`${dir}/config.json records a file outside the directory (${name}); ${fix}`);
  }
  const missing: string[] = [];
  const stats: BigIntStats[] = [];
  for (const name of names) {
    try {
      stats.push(await stat(path.join(dir, name), { bigint: true }));
    } catch {
      missing.push(name);
    }
  }
  if (missing.length > 0) throw new IntegrityError(`${dir} is missing ${missing.length === 1 ? 'file' : 'files'} ${missing.slice(0, 3).join(', ')}${missing.length > 3 ? ', …' : ''} recorded in its config.json; ${fix}`);
  const unrecorded = (await indexedShards(dir)).filter((s) => !(s in files));
  if (unrecorded.length > 0) throw new IntegrityError(`${dir}: shard ${unrecorded[0]} is named by the index but has no recorded sha256 in config.json; ${fix}`);
  const total = stats.reduce((a, s) => a + Number(s.size), 0);
  let done = 0;
  for (const [i, name] of names.entries()) {
    const file = path.resolve(dir, name);
    const identity = identityOf(stats[i]);
    const known = verified.get(file);
    if (!opts.reverify && known && known.identity === identity && known.sha256 === files[name]) {
      done += Number(stats[i].size);
      opts.onProgress?.({ file: name, bytesDone: done, bytesTotal: total });
      continue;
    }
    const startedNs = BigInt(Date.now()) * 1_000_000n;
    const actual = await sha256OfFile(file, (n) => {
      done += n;
      opts.onProgress?.({ file: name, bytesDone: done, bytesTotal: total });
    });
    if (actual !== files[name]) {
      verified.delete(file);
      throw new IntegrityError(`${dir}/${name} does not have the sha256 recorded in config.json (recorded ${files[name].slice(0, 12)}…, found ${actual.slice(0, 12)}…); ${fix}`);
    }
    const after = await stat(file, { bigint: true });
    const settled = after.mtimeNs + SETTLED_NS <= startedNs && after.ctimeNs + SETTLED_NS <= startedNs;
    if (settled && identityOf(after) === identity) verified.set(file, { identity, sha256: actual });
  }
}

/** Outputs at least this large get a progress line while their hashes are checked. */
export const PROGRESS_THRESHOLD_BYTES = 256 * 1024 * 1024;

/**
 * A progress listener producing "verify: sha256 of <file> — 12.3/60.0 GB, ETA 3.1 min" lines (at
 * most one a second), only for outputs of at least PROGRESS_THRESHOLD_BYTES: small ones hash in
 * well under a second.
 */
export function hashProgressLines(write: (line: string) => void, label = 'verify'): (p: HashProgress) => void {
  const started = Date.now();
  let lastDrawn = 0;
  return (p) => {
    if (p.bytesTotal < PROGRESS_THRESHOLD_BYTES) return;
    const now = Date.now();
    const finished = p.bytesDone >= p.bytesTotal;
    if (!finished && now - lastDrawn < 1000) return;
    lastDrawn = now;
    const secs = (now - started) / 1000;
    const eta = p.bytesDone > 0 ? (secs / p.bytesDone) * (p.bytesTotal - p.bytesDone) : null;
    const gb = (n: number) => (n / 1e9).toFixed(1);
    const etaText = eta === null ? 'ETA —' : eta < 90 ? `ETA ${eta.toFixed(0)} s` : `ETA ${(eta / 60).toFixed(1)} min`;
    write(`${label}: sha256 of ${p.file} — ${gb(p.bytesDone)}/${gb(p.bytesTotal)} GB, ${etaText}`);
  };
}

/** The same on stderr. */
export function stderrHashProgress(label = 'verify', stream: NodeJS.WriteStream = process.stderr): (p: HashProgress) => void {
  return hashProgressLines((line) => stream.write(line + '\n'), label);
}
