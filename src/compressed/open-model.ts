/**
 * One entry point for commands that run a model: an rfid-moe output (config.json with an
 * rfid_moe block) opens with `loadCompressed` (factored experts run directly), anything else
 * with `openCheckpoint`. Both results are `Checkpoint`s; the compressed one is also a
 * `WeightProvider`, which `weightProviderOf` picks up.
 */
import { openCheckpoint } from '../checkpoint/open.js';
import type { Checkpoint } from '../checkpoint/types.js';
import { isCompressedDir, loadCompressed, type LoadCompressedOptions } from './load.js';

export async function openModel(dir: string, compressedOpts: LoadCompressedOptions = {}): Promise<Checkpoint> {
  return (await isCompressedDir(dir)) ? loadCompressed(dir, compressedOpts) : openCheckpoint(dir);
}
