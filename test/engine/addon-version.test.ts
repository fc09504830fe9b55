/**
 * An addon built from older sources (a checkout updated without rebuilding it) is refused at load
 * with the fix, instead of failing in the middle of a forward pass; the addon built from these
 * sources exports everything the engine calls.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { KERNEL_REVISION, missingBindingFunctions, nativeAddonPath } from '../../src/engine/native.js';

describe('native addon exports', () => {
  it('names what an older addon lacks', () => {
    const fake: Record<string, unknown> = { gemm: () => undefined, rope: 'not a function' };
    const missing = missingBindingFunctions(fake);
    expect(missing).toContain('rope');
    expect(missing).toContain('addInto');
    expect(missing).toContain('eigSymTop');
    expect(missing).not.toContain('gemm');
  });

  it.skipIf(!existsSync(nativeAddonPath))('the built addon exports every function the engine calls', () => {
    const binding = createRequire(import.meta.url)(nativeAddonPath) as Record<string, unknown>;
    expect(missingBindingFunctions(binding)).toEqual([]);
    // what the functions accept: an addon of an older revision is refused at load
    expect((binding.kernelRevision as () => number)()).toBe(KERNEL_REVISION);
  });

  it('names the kernel revision an addon lacks', () => {
    expect(missingBindingFunctions({})).toContain('kernelRevision');
  });
});
