/**
 * Multi-threaded GEMM for a synchronous API.
 *
 * The calling thread splits C into chunks of rows (or columns when C is wide), shares A, B and C
 * through SharedArrayBuffers, posts one job to each worker and then works on chunks itself. Work
 * is claimed with Atomics.add on a shared counter, so a worker that is still booting (or failed to
 * boot) simply claims nothing and the caller does the rest; the caller blocks on Atomics.wait
 * until every chunk is reported done.
 *
 * Workers are plain JS text evaluated with `eval: true` (the kernel's own source text is embedded),
 * so the same code runs from src/*.ts under tsx/vitest and from dist/*.js. They are unref'd, so an
 * idle pool never keeps a process alive; dispose() terminates them.
 */
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { EngineError } from '../types.js';
import { gemmBlock, type AnyFloatArray } from './gemm-kernel.js';

/** Products below this many multiply-adds run on the calling thread: dispatch costs ~0.1–0.5 ms. */
export const PARALLEL_MIN_MULADDS = 1 << 22;

/** Control slots in the shared Int32Array. */
const NEXT_CHUNK = 0;
const DONE_CHUNKS = 1;
const FAILED = 2;
const WORKER_CHUNKS = 3;

/** A chunk that runs longer than this without any chunk finishing means a worker died mid-chunk. */
const STALL_TIMEOUT_MS = 10 * 60 * 1000;

interface GemmJob {
  control: Int32Array;
  m: number;
  n: number;
  k: number;
  a: AnyFloatArray;
  transA: boolean;
  b: AnyFloatArray;
  transB: boolean;
  c: AnyFloatArray;
  alpha: number;
  beta: number;
  /** true: chunks are row ranges of C; false: column ranges */
  byRows: boolean;
  /**
   * syrk mode: a square C's lower triangle (with diagonal) is computed, by row chunks whose
   * diagonal blocks also fill part of the upper triangle; implies byRows
   */
  lower: boolean;
  chunkSize: number;
  chunkCount: number;
}

/**
 * Claims chunks until none are left. Shared verbatim by the caller and (as source text) by the
 * workers, hence self-contained like gemmBlock.
 */
function runGemmChunks(job: GemmJob, kernel: typeof gemmBlock, report: (err: unknown) => void, byWorker: boolean): void {
  const ctl = job.control;
  for (;;) {
    const claimed = Atomics.add(ctl, 0, 1);
    if (claimed >= job.chunkCount) return;
    // Triangle chunks grow with their row index: hand out the heaviest first for a balanced finish.
    const idx = job.lower ? job.chunkCount - 1 - claimed : claimed;
    const start = idx * job.chunkSize;
    const extent = job.byRows ? job.m : job.n;
    const end = Math.min(extent, start + job.chunkSize);
    try {
      if (job.byRows) {
        const colEnd = job.lower ? end : job.n;
        kernel(job.m, job.n, job.k, job.a, job.transA, job.b, job.transB, job.c, job.alpha, job.beta, start, end, 0, colEnd);
      } else {
        kernel(job.m, job.n, job.k, job.a, job.transA, job.b, job.transB, job.c, job.alpha, job.beta, 0, job.m, start, end);
      }
    } catch (err) {
      // Report and flag before the chunk counts as done, so the caller cannot miss the failure.
      report(err);
      Atomics.store(ctl, 2, 1);
      throw err;
    } finally {
      if (byWorker) Atomics.add(ctl, 3, 1);
      Atomics.add(ctl, 1, 1);
      Atomics.notify(ctl, 1);
    }
  }
}

const WORKER_SOURCE = `
'use strict';
// Bundlers that keep function names (esbuild keepNames) may emit __name(fn, "name") calls.
var __name = function (target) { return target; };
const { parentPort } = require('node:worker_threads');
const gemmBlock = ${gemmBlock.toString()};
const runGemmChunks = ${runGemmChunks.toString()};
let errorPort = null;
function report(err) {
  if (errorPort) errorPort.postMessage(String(err && err.stack ? err.stack : err));
}
parentPort.on('message', function (msg) {
  if (msg.errorPort) { errorPort = msg.errorPort; return; }
  try {
    runGemmChunks(msg.job, gemmBlock, report, true);
  } catch (err) {
    // already reported and flagged inside runGemmChunks
  }
});
`;

function toShared(src: AnyFloatArray, copy: boolean): AnyFloatArray {
  if (src.buffer instanceof SharedArrayBuffer) return src;
  const buffer = new SharedArrayBuffer(src.byteLength);
  const shared: AnyFloatArray = src instanceof Float32Array ? new Float32Array(buffer) : new Float64Array(buffer);
  if (copy) shared.set(src);
  return shared;
}

export class GemmPool {
  private workers: Worker[] = [];
  /** one port per worker, read synchronously (the event loop is blocked while we wait) */
  private errorPorts: MessagePort[] = [];
  private broken = false;
  private disposed = false;
  /** chunks of the last run() computed by worker threads (0: the caller did everything) */
  lastRunWorkerChunks = 0;

  /** @param threads total threads including the caller's */
  constructor(readonly threads: number) {}

  /** Whether a product of this size is worth spreading over threads. */
  wants(m: number, n: number, k: number): boolean {
    return this.threads > 1 && !this.broken && !this.disposed && m * n * k >= PARALLEL_MIN_MULADDS && Math.max(m, n) >= 64;
  }

  private ensureWorkers(): Worker[] {
    if (this.workers.length > 0 || this.threads <= 1) return this.workers;
    for (let t = 1; t < this.threads; t++) {
      const worker = new Worker(WORKER_SOURCE, { eval: true });
      // Without a listener an 'error' event would crash the process; the pool just stops using
      // workers (work-claiming means pending jobs still complete on the calling thread).
      worker.on('error', () => {
        this.broken = true;
      });
      worker.unref();
      const { port1, port2 } = new MessageChannel();
      worker.postMessage({ errorPort: port2 }, [port2]);
      port1.unref();
      this.errorPorts.push(port1);
      this.workers.push(worker);
    }
    return this.workers;
  }

  run(
    m: number, n: number, k: number,
    a: AnyFloatArray, transA: boolean,
    b: AnyFloatArray, transB: boolean,
    c: AnyFloatArray, alpha: number, beta: number,
    lowerTriangleOnly = false,
  ): void {
    const workers = this.ensureWorkers();
    const byRows = lowerTriangleOnly || m >= n;
    const extent = byRows ? m : n;
    // Each chunk re-packs its own panel of B (or A), so chunks stay >= 32 wide to keep that < ~3%;
    // ~3 chunks per thread balance load when threads run at uneven speed on a shared machine.
    const chunkSize = Math.max(32, (Math.ceil(extent / (this.threads * 3)) + 3) & ~3);
    const chunkCount = Math.ceil(extent / chunkSize);
    // C's old content matters when beta ≠ 0, and in syrk mode for the part no chunk writes.
    const sharedC = toShared(c, beta !== 0 || lowerTriangleOnly);
    const sharedA = toShared(a, true);
    const job: GemmJob = {
      control: new Int32Array(new SharedArrayBuffer(4 * 4)),
      m, n, k,
      a: sharedA, transA,
      b: b === a ? sharedA : toShared(b, true), transB, // syrk passes A twice: share one copy
      c: sharedC, alpha, beta,
      byRows, lower: lowerTriangleOnly, chunkSize, chunkCount,
    };
    for (const worker of workers) worker.postMessage({ job });

    // The caller's own chunk errors propagate as exceptions; nothing extra to report.
    runGemmChunks(job, gemmBlock, () => undefined, false);

    const ctl = job.control;
    let seen = Atomics.load(ctl, DONE_CHUNKS);
    let lastProgress = Date.now();
    while (seen < chunkCount) {
      Atomics.wait(ctl, DONE_CHUNKS, seen, 1000);
      const now = Atomics.load(ctl, DONE_CHUNKS);
      if (now !== seen) {
        seen = now;
        lastProgress = Date.now();
      } else if (Atomics.load(ctl, FAILED) !== 0 || Date.now() - lastProgress > STALL_TIMEOUT_MS) {
        break;
      }
    }
    if (Atomics.load(ctl, FAILED) !== 0 || seen < chunkCount) {
      this.broken = true;
      let detail = 'no progress (a worker thread stopped)';
      for (const port of this.errorPorts) {
        const received = receiveMessageOnPort(port);
        if (received) detail = String(received.message);
      }
      throw new EngineError(`gemm: worker thread failed: ${detail}; retry with threads: 1`);
    }
    this.lastRunWorkerChunks = Atomics.load(ctl, WORKER_CHUNKS);
    if (sharedC !== c) c.set(sharedC);
  }

  dispose(): void {
    this.disposed = true;
    for (const worker of this.workers) void worker.terminate();
    this.workers = [];
    for (const port of this.errorPorts) port.close();
    this.errorPorts = [];
  }
}
