/** auto/native selection when the native engine reports itself unavailable (simulated). */
import { describe, expect, it, vi } from 'vitest';

vi.mock('../../src/engine/native.js', () => ({
  loadNativeEngine: () => ({ ok: false, reason: 'the native addon is not built (test)', fix: 'run `npm rebuild rfid-moe` (test)' }),
}));

const { createEngine } = await import('../../src/engine/index.js');

describe('createEngine without the native engine', () => {
  it('auto falls back to ts and says why and how to enable native, in one line', async () => {
    const { engine, notice } = await createEngine('auto', { threads: 1 });
    expect(engine.name).toBe('ts');
    expect(notice).toBe(
      'engine: ts (pure TypeScript, 1 thread) — native unavailable: the native addon is not built (test); enable with: run `npm rebuild rfid-moe` (test)',
    );
    engine.dispose();
  });

  it('an explicit native choice is an EngineError carrying the reason and the fix', async () => {
    await expect(createEngine('native')).rejects.toThrow(
      '`engine` native: the native engine is unavailable: the native addon is not built (test); enable with: run `npm rebuild rfid-moe` (test)',
    );
  });
});
