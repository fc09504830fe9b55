/**
 * The memory a tensor is read into. Small buffers come from Node's allocator; buffers of at least
 * LARGE_BUFFER_BYTES from a large-buffer allocator when one is installed: the native engine
 * installs one when its addon loads (src/engine/native.ts), whose buffers Linux may back with
 * 2 MiB pages (native/huge_pages.cc), so that reading a model takes one page fault per 2 MiB
 * instead of 512. Under a hypervisor that is most of a load's time (BENCHMARKS.md, "Cold start").
 *
 * This layer does not depend on the engine: it only holds the hook. Without an allocator, with
 * one that returns null (not Linux, a failed mapping) or throws, the buffer comes from Node as
 * before; the bytes read are the same either way.
 */

/** Buffers from this size on go to the large-buffer allocator: one huge page. */
export const LARGE_BUFFER_BYTES = 2 * 2 ** 20;

/** Returns an ArrayBuffer of exactly `bytes` bytes, or null to let Node allocate it. */
export type LargeBufferAllocator = (bytes: number) => ArrayBuffer | null;

let largeAllocator: LargeBufferAllocator | null = null;

/**
 * Installs (or, with null, removes) the allocator for large tensor buffers; returns the one it
 * replaces. RFID_MOE_HUGE_PAGES=0 in the environment keeps every buffer on Node's allocator.
 */
export function setLargeBufferAllocator(allocator: LargeBufferAllocator | null): LargeBufferAllocator | null {
  const before = largeAllocator;
  largeAllocator = allocator;
  return before;
}

function hugePagesOff(): boolean {
  const v = process.env.RFID_MOE_HUGE_PAGES;
  return v === '0' || v === 'false' || v === 'off';
}

/**
 * A fresh, unshared, 8-aligned buffer whose contents the caller overwrites (callers fill every
 * byte or throw): skipping Node's zero-fill roughly halves the cost of reading a warm-cache
 * tensor. A plain Uint8Array (not a Buffer, whose slice() would alias).
 */
export function tensorBytes(length: number): Uint8Array {
  if (largeAllocator !== null && length >= LARGE_BUFFER_BYTES && !hugePagesOff()) {
    let buffer: ArrayBuffer | null = null;
    try {
      buffer = largeAllocator(length);
    } catch {
      buffer = null; // an allocator's failure is not the read's: Node's memory serves
    }
    if (buffer !== null && buffer.byteLength === length) return new Uint8Array(buffer);
  }
  return new Uint8Array(Buffer.allocUnsafeSlow(length).buffer, 0, length);
}
