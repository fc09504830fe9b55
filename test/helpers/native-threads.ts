/** Running a check on the native engine at several thread counts (the kernels' bit-for-bit tests). */
import { createEngine } from '../../src/engine/index.js';
import type { Engine } from '../../src/engine/types.js';

/** fn on a fresh native engine of each thread count in turn (disposed after it), the results in order. */
export async function onNativeEngines<T>(threadCounts: number[], fn: (engine: Engine, threads: number) => T): Promise<T[]> {
  const results: T[] = [];
  for (const threads of threadCounts) {
    const { engine } = await createEngine('native', { threads });
    try {
      results.push(fn(engine, threads));
    } finally {
      engine.dispose();
    }
  }
  return results;
}
