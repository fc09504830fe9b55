/**
 * Checkpoint files mapped into memory. A served model's weights kept as stored (BF16 matrices,
 * F32 tensors) can be views of the file's pages, which are the page cache's own, instead of
 * copies read into fresh memory: a load from the page cache is then the page-table work alone
 * (about 20× faster for a 2.5 GB model on the VM where the benchmarks run, BENCHMARKS.md), and
 * the model is not held twice, once by the page cache and once by the process.
 *
 * This layer does not depend on the engine: it only holds the hook, which the native engine
 * installs when its addon loads (native/file_map.cc). Without it (the pure-TS engine, a platform
 * without mmap) every read is a copy, as before. RFID_MOE_MMAP=0 in the environment turns mapping
 * off for the whole process.
 *
 * What a mapping asks of the file: that it is not cut short or rewritten in place while the
 * model is served. A file replaced by a new one (written elsewhere and renamed over it, as this
 * project writes its outputs) leaves the mapped one intact; one truncated in place makes the
 * process fault when it touches the missing pages. Serve with mapping off where files may change
 * in place under a running server.
 */

export interface FileMapper {
  /** The first `bytes` bytes of the open file `fd`, mapped private and read-only; null where that is not available. */
  map(fd: number, bytes: number): ArrayBuffer | null;
  /** Resolves once every page under `view` (a view of a mapping) is in memory; the reads run off the main thread. */
  populate(view: Uint8Array): Promise<void>;
  /** Hands the pages under `view` back to the system; touched again, they are read from the file again. */
  drop(view: Uint8Array): void;
}

/**
 * A store's files, mapped (TensorSource.mapReads): what a load does with them once its reads
 * hand out views.
 */
export interface MappedFiles {
  /** the bytes mapped */
  readonly bytes: number;
  /** brings every page of the mapped tensors into memory, off the main thread: the disk reads of a load */
  populate(): Promise<void>;
  /** hands the mapped pages back to the system, when the model is unloaded */
  drop(): void;
}

let installed: FileMapper | null = null;

/** Installs (or, with null, removes) the file mapper; returns the one it replaces. */
export function setFileMapper(mapper: FileMapper | null): FileMapper | null {
  const before = installed;
  installed = mapper;
  return before;
}

/** The installed mapper, or null when there is none or RFID_MOE_MMAP turns mapping off. */
export function fileMapper(): FileMapper | null {
  // read on each use, not once: the tests (and a host process) may change it at run time
  const v = process.env.RFID_MOE_MMAP;
  if (v === '0' || v === 'false' || v === 'off') return null;
  return installed;
}
