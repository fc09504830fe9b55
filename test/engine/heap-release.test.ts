/**
 * Peak-memory helpers of the compression: large heap blocks mapped on their own (returned to the
 * system when freed) and dead typed arrays collected on request; and the rounded activations a
 * long product with BF16 matmul activations keeps only while it runs. Checked in child processes,
 * because each changes or measures the whole process.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nativeAddonPath } from '../../src/engine/native.js';
import { childJson } from '../helpers/child-node.js';

const nativeReason = existsSync(nativeAddonPath) ? undefined : 'the native addon is not built';

// Allocate 24 blocks of 4 MiB with a small live array after each (so freed blocks are holes, not
// the heap's top), let the big ones go, collect, and report how much of them left the RSS.
const churn = (map: boolean) => `
  import { mapLargeAllocations } from './src/engine/native.ts';
  import { releaseGarbage } from './src/util/release-garbage.ts';
  import { rssAfterRelease } from './test/helpers/process-memory.ts';
  const applied = ${map} ? mapLargeAllocations() : false;
  // one large block freed first: glibc then raises its threshold above 4 MiB
  { let warm = new Float64Array(6 * 2 ** 17); warm[1] = 1; warm = null; releaseGarbage(); }
  const keep = [];
  let big = [];
  for (let i = 0; i < 24; i++) {
    const b = new Float64Array(2 ** 19); b.fill(1); big.push(b);
    const s = new Float64Array(2 ** 12); s.fill(1); keep.push(s);
  }
  const before = process.memoryUsage().rss;
  big = null;
  releaseGarbage();
  const after = await rssAfterRelease(before, 90 * 2 ** 20);
  console.log(JSON.stringify({ applied, returnedMiB: (before - after) / 2 ** 20, kept: keep.length }));
`;

describe.skipIf(nativeReason !== undefined)(`large blocks mapped on their own${nativeReason ? ` (skipped: ${nativeReason})` : ''}`, () => {
  it('once mapped, 96 MiB of freed 4 MiB blocks between live ones leave the RSS', () => {
    const out = childJson(churn(true));
    if (process.platform === 'linux' && out.applied === false) throw new Error('mapLargeAllocations did not apply on Linux (not glibc?)');
    if (out.applied) expect(out.returnedMiB).toBeGreaterThan(0.9 * 96);
  });

  it("a MALLOC_MMAP_THRESHOLD_ the user set wins: nothing is changed", () => {
    const out = childJson(churn(true), { MALLOC_MMAP_THRESHOLD_: '131072' });
    expect(out.applied).toBe(false);
  });
});

describe('releaseGarbage', () => {
  it('frees dead typed arrays (without waiting for V8 to decide to collect)', () => {
    const out = childJson(`
      import { releaseGarbage } from './src/util/release-garbage.ts';
      let held = Array.from({ length: 8 }, () => new Float64Array(2 ** 20).fill(1));
      const before = process.memoryUsage().arrayBuffers;
      held = null;
      releaseGarbage();
      // V8 may free the collected buffers on a background thread: wait up to 2 s for them
      let after = process.memoryUsage().arrayBuffers;
      for (let t = 0; t < 200 && before - after < 63 * 2 ** 20; t++) {
        await new Promise((r) => setTimeout(r, 10));
        after = process.memoryUsage().arrayBuffers;
      }
      console.log(JSON.stringify({ freedMiB: (before - after) / 2 ** 20 }));
    `);
    expect(out.freedMiB).toBeGreaterThanOrEqual(63);
  });
});

describe.skipIf(nativeReason !== undefined)('BF16 matmul activations: a long product\'s rounded rows', () => {
  it('leave the RSS after the product (an evaluation pass of 8192 rows × 4096 rounds 64 MiB of them)', () => {
    const out = childJson(`
      import { createEngine } from './src/engine/index.ts';
      import { rssAfterRelease } from './test/helpers/process-memory.ts';
      const { engine } = await createEngine('native', { threads: 1, matmulActivations: 'bf16' });
      const [m, n, k] = [8192, 16, 4096];
      const a = new Float32Array(m * k).fill(0.5);
      const b = new Uint16Array(n * k).fill(0x3f80);
      const c = new Float32Array(m * n);
      const base = process.memoryUsage().rss;
      engine.kernels.gemmBf16(m, n, k, a, b, c, 0);
      const after = await rssAfterRelease(base + 8 * 2 ** 20, 0);
      console.log(JSON.stringify({ keptMiB: (after - base) / 2 ** 20, value: c[0] }));
    `);
    // 4096 × 0.5 × 1 = 2048, exact; what stays is far below the 64-192 MiB the rounded rows took
    expect(out.value).toBe(2048);
    expect(out.keptMiB).toBeLessThan(16);
  });
});
