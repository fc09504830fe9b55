import { describe, expect, it } from 'vitest';
import { createEngine, listAvailableEngines, parseEngineChoice } from '../../src/engine/index.js';
import { loadNativeEngine } from '../../src/engine/native.js';
import { EngineError } from '../../src/engine/types.js';

const nativeProbe = loadNativeEngine();
if (nativeProbe.ok) nativeProbe.engine.dispose();

describe('createEngine', () => {
  it('ts: states the engine and thread count', async () => {
    const { engine, notice } = await createEngine('ts', { threads: 2 });
    expect(engine.name).toBe('ts');
    expect(notice).toBe('engine: ts (pure TypeScript, 2 threads)');
    engine.dispose();
  });

  it('auto: native when it loads, else ts with the reason and the fix', async () => {
    const { engine, notice } = await createEngine('auto');
    if (nativeProbe.ok) {
      expect(engine.name).toBe('native');
      expect(notice).toMatch(/^engine: native \(OpenBLAS /);
    } else {
      expect(engine.name).toBe('ts');
      expect(notice).toContain(`native unavailable: ${nativeProbe.reason}; enable with: ${nativeProbe.fix}`);
    }
    expect(notice.split('\n')).toHaveLength(1);
    engine.dispose();
  });

  it.skipIf(nativeProbe.ok)('native when unavailable: EngineError with the reason and the fix', async () => {
    await expect(createEngine('native')).rejects.toThrow(EngineError);
    await expect(createEngine('native')).rejects.toThrow(/enable with:/);
  });

  it('parseEngineChoice accepts the four names and rejects others with the list', () => {
    for (const name of ['auto', 'native', 'ts', 'tfjs']) expect(parseEngineChoice(name)).toBe(name);
    expect(() => parseEngineChoice('gpu')).toThrow(/auto, native, ts, tfjs/);
  });

  it('listAvailableEngines always includes ts, and native exactly when it loads', async () => {
    const engines = await listAvailableEngines({ threads: 1 });
    const names = engines.map((e) => e.name);
    expect(names).toContain('ts');
    expect(names.includes('native')).toBe(nativeProbe.ok);
    engines.forEach((e) => e.dispose());
  });
});
