/**
 * Tensors of 2 MiB or more read into memory that Linux backs with huge pages (the native engine's
 * allocator, native/huge_pages.cc, installed into io/tensor-buffers.ts when the addon loads):
 * measured in the kernel's own count (AnonHugePages of /proc/self/smaps_rollup), against the same
 * allocation with RFID_MOE_HUGE_PAGES=0; the memory leaves the process once the buffer is
 * collected; bad sizes are refused; at most RFID_MOE_HUGE_PAGE_MAPPINGS buffers (by default a
 * quarter of vm.max_map_count) are alive at once, and beyond that Node allocates. Child processes, because the allocator is process-wide.
 * Skipped where the addon is not built or the kernel has no transparent huge pages.
 */
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { nativeAddonPath } from '../../src/engine/native.js';
import { reportsFreePages } from '../../src/io/tensor-buffers.js';
import { childJson } from '../helpers/child-node.js';

function thpMode(): string | undefined {
  try {
    return /\[(\w+)\]/.exec(readFileSync('/sys/kernel/mm/transparent_hugepage/enabled', 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}
const mode = thpMode();
const skipReason = !existsSync(nativeAddonPath)
  ? 'the native addon is not built'
  : mode === undefined || mode === 'never' || !existsSync('/proc/self/smaps_rollup')
    ? `this kernel offers no transparent huge pages (mode: ${mode ?? 'absent'})`
    : undefined;

// 64 MiB through the reader's allocation, written once (pages exist only when touched), then let go
const hugeUse = `
  import { loadNativeEngine } from './src/engine/native.ts';
  import { tensorBytes } from './src/io/tensor-buffers.ts';
  import { releaseGarbage } from './src/util/release-garbage.ts';
  import { anonHugePagesMiB as huge, rssAfterRelease } from './test/helpers/process-memory.ts';
  const loaded = loadNativeEngine({ threads: 1 });
  if (!loaded.ok) throw new Error(loaded.reason);
  const before = huge();
  let bytes = tensorBytes(64 * 2 ** 20);
  bytes.fill(7);
  const sum = bytes[0] + bytes[bytes.length - 1];
  const held = huge() - before;
  const rssHeld = process.memoryUsage().rss;
  bytes = null;
  releaseGarbage();
  const rss = await rssAfterRelease(rssHeld, 60 * 2 ** 20);
  console.log(JSON.stringify({ heldMiB: held, afterMiB: huge() - before, returnedMiB: (rssHeld - rss) / 2 ** 20, sum }));
`;

describe.skipIf(skipReason !== undefined)(`tensor buffers in huge pages${skipReason ? ` (skipped: ${skipReason})` : ''}`, () => {
  it('a 64 MiB tensor buffer is backed by huge pages, and its memory leaves once collected', () => {
    // (asked for: on a VM that reports its free pages to the host they are off by default)
    const on = childJson(hugeUse, { RFID_MOE_HUGE_PAGES: '1' });
    expect(on.sum).toBe(14);
    // the kernel may fall back to small pages for a few ranges when memory is fragmented
    expect(on.heldMiB).toBeGreaterThanOrEqual(32);
    expect(on.afterMiB).toBeLessThan(on.heldMiB as number);
    expect(on.returnedMiB).toBeGreaterThanOrEqual(60);
  });

  it('RFID_MOE_HUGE_PAGES=0: the same buffer on small pages', () => {
    const off = childJson(hugeUse, { RFID_MOE_HUGE_PAGES: '0' });
    expect(off.sum).toBe(14);
    // in "always" mode the kernel may use huge pages for any large mapping; in "madvise" only where asked
    if (mode === 'madvise') expect(off.heldMiB).toBeLessThan(8);
  });

  it.skipIf(process.env.RFID_MOE_HUGE_PAGES !== undefined)('by default: huge pages, unless this is a VM that reports its free pages to the host', () => {
    const dflt = childJson(hugeUse);
    expect(dflt.sum).toBe(14);
    if (!reportsFreePages()) expect(dflt.heldMiB).toBeGreaterThanOrEqual(32);
    else if (mode === 'madvise') expect(dflt.heldMiB).toBeLessThan(8);
  });

  it('hands out at most RFID_MOE_HUGE_PAGE_MAPPINGS buffers at once; the reader then allocates as usual', () => {
    const out = childJson(
      `
      import { createRequire } from 'node:module';
      import { loadNativeEngine, nativeAddonPath } from './src/engine/native.ts';
      import { tensorBytes } from './src/io/tensor-buffers.ts';
      import { releaseGarbage } from './src/util/release-garbage.ts';
      loadNativeEngine({ threads: 1 });
      const addon = createRequire(import.meta.url)(nativeAddonPath);
      let held = [addon.hugePageBuffer(4096), addon.hugePageBuffer(4096)];
      const third = addon.hugePageBuffer(4096);
      const fallback = tensorBytes(4 * 2 ** 20); // the reader's path: Node's memory, same size
      held = null;
      releaseGarbage();
      let again = null;
      for (let t = 0; t < 200 && again === null; t++) {
        again = addon.hugePageBuffer(4096);
        if (again === null) await new Promise((r) => setTimeout(r, 10));
      }
      console.log(JSON.stringify({ third: third === null, fallback: fallback.length, again: again !== null && again.byteLength === 4096 }));
    `,
      { RFID_MOE_HUGE_PAGE_MAPPINGS: '2', RFID_MOE_HUGE_PAGES: '1' },
    );
    expect(out).toEqual({ third: true, fallback: 4 * 2 ** 20, again: true });
  });

  it('a TensorArena puts tensors of a few hundred KiB into huge pages too', () => {
    // 40 factor-sized tensors of 850 KiB (33 MiB), packed, against the same reads each in its own buffer
    const script = `
      import { loadNativeEngine } from './src/engine/native.ts';
      import { TensorArena, tensorBytes } from './src/io/tensor-buffers.ts';
      import { anonHugePagesMiB as huge } from './test/helpers/process-memory.ts';
      const loaded = loadNativeEngine({ threads: 1 });
      if (!loaded.ok) throw new Error(loaded.reason);
      const arena = new TensorArena();
      const before = huge();
      const held = Array.from({ length: 40 }, (_, i) => {
        const b = process.env.PACK === '1' ? arena.bytes(850 * 1024) : tensorBytes(850 * 1024);
        b.fill(i + 1);
        return b;
      });
      const intact = held.every((b, i) => b[0] === i + 1 && b[b.length - 1] === i + 1);
      console.log(JSON.stringify({ hugeMiB: huge() - before, intact, chunks: arena.stats.chunks }));
    `;
    const packed = childJson(script, { PACK: '1', RFID_MOE_HUGE_PAGES: '1' });
    expect(packed.intact).toBe(true);
    expect(packed.chunks).toBe(3);
    expect(packed.hugeMiB).toBeGreaterThanOrEqual(16);
    const own = childJson(script, { PACK: '0', RFID_MOE_HUGE_PAGES: '1' });
    expect(own.intact).toBe(true);
    if (mode === 'madvise') expect(own.hugeMiB).toBeLessThan(8);
  });

  it('refuses sizes that are not positive integers', () => {
    const out = childJson(`
      import { createRequire } from 'node:module';
      import { loadNativeEngine, nativeAddonPath } from './src/engine/native.ts';
      loadNativeEngine({ threads: 1 });
      const addon = createRequire(import.meta.url)(nativeAddonPath);
      const refused = [0, -1, 1.5, Number.NaN, 2 ** 60].map((n) => { try { addon.hugePageBuffer(n); return ''; } catch (e) { return e.message; } });
      const b = addon.hugePageBuffer(5);
      console.log(JSON.stringify({ refused: refused.every((m) => /^hugePageBuffer: bytes must be (a positive integer|finite)$/.test(m)), length: b.byteLength, zero: new Uint8Array(b).every((x) => x === 0) }));
    `);
    expect(out).toEqual({ refused: true, length: 5, zero: true });
  });
});
