/**
 * The memory a tensor is read into. Small buffers come from Node's allocator; buffers of at least
 * LARGE_BUFFER_BYTES from a large-buffer allocator when one is installed: the native engine
 * installs one when its addon loads (src/engine/native.ts), whose buffers Linux may back with
 * 2 MiB pages (native/huge_pages.cc), so that reading a model takes one page fault per 2 MiB
 * instead of 512. Under a hypervisor that is most of a load's time (BENCHMARKS.md, "Cold start").
 *
 * On a VM that reports its free pages to the host the engine installs it off by default
 * (reportsFreePages): there fresh huge pages are the slow ones.
 *
 * This layer does not depend on the engine: it only holds the hook. Without an allocator, with
 * one that returns null (not Linux, a failed mapping) or throws, the buffer comes from Node as
 * before; the bytes read are the same either way.
 */

import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

/** Buffers from this size on go to the large-buffer allocator: one huge page. */
export const LARGE_BUFFER_BYTES = 2 * 2 ** 20;

/** Buffers from this size up to LARGE_BUFFER_BYTES are packed into a TensorArena's chunks. */
export const PACKED_BUFFER_BYTES = 64 * 2 ** 10;

/** A TensorArena's chunk: eight huge pages. */
export const ARENA_CHUNK_BYTES = 16 * 2 ** 20;

/** Where packed buffers start within a chunk: a cache line, as the kernels' own buffers. */
const ARENA_ALIGN = 64;

/**
 * Returns an ArrayBuffer of exactly `bytes` bytes, or null to let Node allocate it. `byDefault`
 * false: used only where RFID_MOE_HUGE_PAGES=1 asks for it (absent: used unless it says 0).
 */
export type LargeBufferAllocator = ((bytes: number) => ArrayBuffer | null) & { readonly byDefault?: boolean };

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
  // read on each large allocation, not once: the tests (and a host process) may change it at run time
  const v = process.env.RFID_MOE_HUGE_PAGES;
  if (v === '0' || v === 'false' || v === 'off') return true;
  if (v === '1' || v === 'true' || v === 'on') return false;
  return largeAllocator?.byDefault === false;
}

/**
 * Whether this machine is a virtual machine that hands its free memory back to the host
 * (virtio-balloon's free page reporting, feature bit 5: Firecracker, Cloud Hypervisor, QEMU with
 * free-page-reporting). Free blocks of megabytes are what it reports, and a 2 MiB page is made
 * from such a block, so its first touch costs the host a fault for every 4 KiB it maps back, while
 * small pages mostly come from memory the guest still holds. On such a VM a 2.5 GB model loaded in
 * 4.5 s into huge pages against 2.3 s on small ones (BENCHMARKS.md, `bench:load-pages`). `root`:
 * the driver's directory in sysfs (tests give another).
 */
export function reportsFreePages(root = '/sys/bus/virtio/drivers/virtio_balloon'): boolean {
  let entries: string[];
  try {
    entries = readdirSync(root).filter((e) => e.startsWith('virtio'));
  } catch {
    return false; // no balloon driver: not such a VM, or not Linux
  }
  const VIRTIO_BALLOON_F_REPORTING = 5;
  return entries.some((e) => {
    try {
      // one character per feature bit, bit 0 first
      return readFileSync(path.join(root, e, 'features'), 'utf8')[VIRTIO_BALLOON_F_REPORTING] === '1';
    } catch {
      return false;
    }
  });
}

/**
 * A fresh, unshared, 8-aligned buffer whose contents the caller overwrites (callers fill every
 * byte or throw): skipping Node's zero-fill roughly halves the cost of reading a warm-cache
 * tensor. A plain Uint8Array (not a Buffer, whose slice() would alias).
 */
export function tensorBytes(length: number): Uint8Array {
  const buffer = largeAllocator !== null && length >= LARGE_BUFFER_BYTES && !hugePagesOff() ? allocateLarge(largeAllocator, length) : null;
  return buffer !== null ? new Uint8Array(buffer) : new Uint8Array(Buffer.allocUnsafeSlow(length).buffer, 0, length);
}

/** `allocator`'s buffer of exactly `bytes`, or null when it gives none, throws or gives another size. */
function allocateLarge(allocator: LargeBufferAllocator, bytes: number): ArrayBuffer | null {
  let buffer: ArrayBuffer | null;
  try {
    buffer = allocator(bytes);
  } catch {
    return null; // an allocator's failure is not the read's: Node's memory serves
  }
  return buffer !== null && buffer.byteLength === bytes ? buffer : null;
}

/** Where a reader gets the memory of each tensor it reads. */
export type TensorBufferSource = (length: number) => Uint8Array;

/**
 * Packs tensors too small for a huge page of their own (PACKED_BUFFER_BYTES up to
 * LARGE_BUFFER_BYTES) into shared chunks from the large-buffer allocator, so that they are read
 * into huge pages too. A factored checkpoint is mostly such tensors (factors of a few hundred KiB
 * to ~2 MiB each), and without packing its load paid 512 faults per 2 MiB for them, slower than
 * the original it was compressed from (BENCHMARKS.md, "Cold start").
 *
 * The price is lifetime: a chunk goes back to the system only when every tensor packed into it
 * has been collected. So an arena is for reads whose results live and die together, a served
 * model's load (src/serve/models.ts), and is closed when that ends; reads after close(), other
 * sizes, a failed or refused chunk, and RFID_MOE_HUGE_PAGES=0 all take `tensorBytes` as before.
 * The memory the chunks hold beyond their tensors is the unfilled end of each chunk, of which only
 * the huge page under the last tensor is ever touched: under 2 MiB of resident memory per chunk.
 */
export class TensorArena {
  private chunk: ArrayBuffer | null = null;
  private used = 0;
  private closed = false;
  private packedBytes = 0;
  private chunks = 0;

  /** `allocator` is the one installed by setLargeBufferAllocator unless given (tests). */
  constructor(private readonly allocator: LargeBufferAllocator | null = null) {}

  /** A fresh, unshared range of `length` bytes, 64-aligned, whose contents the caller overwrites. */
  readonly bytes: TensorBufferSource = (length: number): Uint8Array => {
    const allocator = this.allocator ?? largeAllocator;
    if (this.closed || allocator === null || length < PACKED_BUFFER_BYTES || length >= LARGE_BUFFER_BYTES || hugePagesOff()) return tensorBytes(length);
    let at = Math.ceil(this.used / ARENA_ALIGN) * ARENA_ALIGN;
    if (this.chunk === null || at + length > this.chunk.byteLength) {
      const chunk = allocateLarge(allocator, ARENA_CHUNK_BYTES);
      if (chunk === null) return tensorBytes(length);
      this.chunk = chunk;
      this.chunks++;
      at = 0;
    }
    this.used = at + length;
    this.packedBytes += length;
    return new Uint8Array(this.chunk, at, length);
  };

  /** Stops packing: later reads get buffers of their own. The chunks live on in their tensors. */
  close(): void {
    this.closed = true;
    this.chunk = null;
  }

  /** Bytes packed so far and the chunks they took. */
  get stats(): { packedBytes: number; chunks: number } {
    return { packedBytes: this.packedBytes, chunks: this.chunks };
  }
}
