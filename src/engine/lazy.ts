/**
 * An engine given by the caller (used as is, never disposed here) or a choice, created on first
 * use and disposed by `dispose()`. Long runs that may refuse their input before any numerics
 * (compress, merge) take one, so a refusal never pays for starting worker threads or OpenBLAS.
 */
import { createEngine, type EngineChoice } from './index.js';
import type { Engine } from './types.js';

export interface LazyEngine {
  /** the engine, created on the first call when the caller gave a choice */
  get(): Promise<Engine>;
  /** the notice createEngine printed ('' until created, or for a caller's engine) */
  notice(): string;
  /** disposes the engine if it was created here */
  dispose(): void;
}

export function lazyEngine(given: Engine | EngineChoice | undefined, threads?: number): LazyEngine {
  let owned: Engine | undefined;
  let notice = '';
  return {
    async get() {
      if (given !== undefined && typeof given === 'object') return given;
      if (!owned) {
        const created = await createEngine(given ?? 'auto', { threads });
        owned = created.engine;
        notice = created.notice;
      }
      return owned;
    },
    notice: () => notice,
    dispose: () => owned?.dispose(),
  };
}
