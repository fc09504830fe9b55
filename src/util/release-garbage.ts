/**
 * Collects the young generation now, so that the large typed arrays a step of the compression has
 * just let go are freed at once.
 *
 * Why: V8 frees an ArrayBuffer's memory only when a collection finds its wrapper dead, and it
 * starts one for external memory only after tens of MiB have been allocated since the last. A
 * layer's factorisation lets go of several d×d f64 buffers per expert (32 MiB each at d = 2048:
 * the Gram matrix read for it, the Cholesky factor, the products), so without this about two
 * experts' worth of dead buffers sit beside the live ones at the peak. A young-generation
 * collection costs about a millisecond against the seconds a group's factorisation takes.
 *
 * `gc` is exposed at run time (`--expose-gc` through v8.setFlagsFromString, then read from a
 * fresh context, which is where run-time flags apply); where that is unavailable this is a no-op.
 */
import v8 from 'node:v8';
import vm from 'node:vm';

type Gc = (options?: { type?: 'major' | 'minor' }) => void;

let collect: Gc | null | undefined;

function gcFunction(): Gc | null {
  if (collect !== undefined) return collect;
  const existing = (globalThis as { gc?: unknown }).gc;
  if (typeof existing === 'function') return (collect = existing as Gc);
  try {
    v8.setFlagsFromString('--expose-gc');
    const fn = vm.runInNewContext('gc') as unknown;
    collect = typeof fn === 'function' ? (fn as Gc) : null;
  } catch {
    collect = null;
  }
  return collect;
}

export function releaseGarbage(): void {
  const gc = gcFunction();
  if (!gc) return;
  try {
    gc();
  } catch {
    collect = null;
  }
}
