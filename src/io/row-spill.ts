/**
 * f32 arrays parked in a temporary file until a prefix of each is read back, byte for byte.
 *
 * Why: the spectral path factorises every group of a layer before the allocation says how many
 * basis rows each keeps, so it holds each group's basis at its rank cap meanwhile — as much as a
 * third of the layer's weights again at 128 experts. Parked on disk, that memory no longer grows
 * with the number of experts; only the rows the allocation keeps come back.
 *
 * The file lives in its own directory under the system's temporary directory and is removed by
 * close(); a process killed before that leaves it there (named rfid-moe-spill-*).
 */
import { closeSync, mkdtempSync, openSync, readSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { RfidMoeError } from '../errors.js';

export interface SpillHandle {
  /** byte offset in the file */
  offset: number;
  /** f32 values stored */
  length: number;
}

/** What failed, where, and what to do about it (the directory is the system's temporary one). */
export class SpillError extends RfidMoeError {
  readonly kind = 'SpillError';
}

function spillError(parent: string, err: unknown): SpillError {
  return new SpillError(
    `could not park basis rows in a temporary file under ${parent} (${(err as Error).message}); free space there or point TMPDIR at a directory with room (a layer's bases at their rank caps need about a third of its weights' f32 bytes)`,
    { cause: err },
  );
}

export class RowSpill {
  private fd: number | undefined;
  private end = 0;

  private constructor(
    private readonly dir: string,
    fd: number,
  ) {
    this.fd = fd;
  }

  static create(parent: string = os.tmpdir()): RowSpill {
    let dir: string | undefined;
    try {
      dir = mkdtempSync(path.join(parent, 'rfid-moe-spill-'));
      return new RowSpill(dir, openSync(path.join(dir, 'rows.f32'), 'w+'));
    } catch (err) {
      if (dir) rmSync(dir, { recursive: true, force: true });
      throw spillError(parent, err);
    }
  }

  private get open(): number {
    if (this.fd === undefined) throw new Error('row spill used after close (bug)');
    return this.fd;
  }

  /** Appends `data`; returns where it went. */
  put(data: Float32Array): SpillHandle {
    const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    let done = 0;
    try {
      while (done < bytes.length) done += writeSync(this.open, bytes, done, bytes.length - done, this.end + done);
    } catch (err) {
      throw spillError(path.dirname(this.dir), err);
    }
    const handle = { offset: this.end, length: data.length };
    this.end += bytes.length;
    return handle;
  }

  /** The first `count` values stored at `handle`, as a new array. */
  read(handle: SpillHandle, count = handle.length): Float32Array {
    if (!Number.isInteger(count) || count < 0 || count > handle.length) throw new RangeError(`${count} values asked of ${handle.length} stored`);
    const out = new Float32Array(count);
    const bytes = new Uint8Array(out.buffer);
    let done = 0;
    while (done < bytes.length) {
      const n = readSync(this.open, bytes, done, bytes.length - done, handle.offset + done);
      if (n === 0) throw new Error(`row spill file ended early at byte ${handle.offset + done} (was it removed?)`);
      done += n;
    }
    return out;
  }

  /** Closes and removes the file; idempotent. */
  close(): void {
    if (this.fd !== undefined) {
      closeSync(this.fd);
      this.fd = undefined;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}
