/**
 * Garbage collection on request, for the places where V8's own timing holds memory too long: the
 * compression between groups (below) and the server when it falls idle (serve/idle-gc.ts).
 *
 * `gc()` is not exposed without --expose-gc, and a library or CLI cannot add node flags to its own
 * process; the documented v8.setFlagsFromString switch exposes it to new contexts at run time.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

/** The collector, or null where it cannot be exposed. */
export function exposeGc(): (() => void) | null {
  const existing = (globalThis as { gc?: unknown }).gc;
  if (typeof existing === 'function') return existing as () => void;
  try {
    v8.setFlagsFromString('--expose-gc');
    const gc = vm.runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  }
}

let collect: (() => void) | null | undefined;

/**
 * A full collection now, so that the large typed arrays a step of the compression has just let go
 * are freed (V8 may finish freeing them on a background thread).
 *
 * Why: V8 frees an ArrayBuffer's memory only when a collection finds its wrapper dead, and it
 * starts one for external memory only after tens of MiB have been allocated since the last. A
 * layer's factorisation lets go of several d×d f64 buffers per expert (32 MiB each at d = 2048:
 * a Gram matrix read for a sum, the Cholesky factor, the refit's copies), so without this a few
 * of them sit beside the live ones at the peak. With a small heap a collection takes milliseconds,
 * against the seconds a group's factorisation takes. A no-op where the collector is unavailable.
 */
export function releaseGarbage(): void {
  if (collect === undefined) collect = exposeGc();
  collect?.();
}

/** Below this, dead buffers are left to V8's own timing: a collection would cost more than they hold. */
export const LARGE_GARBAGE_BYTES = 8 * 2 ** 20;

/** releaseGarbage when what just died is large: `bytes` is the size of one dead buffer. */
export function releaseGarbageOf(bytes: number): void {
  if (bytes >= LARGE_GARBAGE_BYTES) releaseGarbage();
}
