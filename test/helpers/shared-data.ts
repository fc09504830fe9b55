/**
 * Locates the read-only shared data folder (`../shared/data` beside the checkout, or
 * $RFID_MOE_DATA). Tests that need it call `sharedDataOrSkip()` and are skipped with a clear
 * message when it is absent (a user's fresh clone), never failed.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export const sharedDataDir: string = process.env.RFID_MOE_DATA ?? path.resolve(repoRoot, '..', 'shared', 'data');

export const hasSharedData: boolean = existsSync(sharedDataDir);

/** Absolute path of a file under the shared data folder. */
export function sharedPath(...parts: string[]): string {
  return path.join(sharedDataDir, ...parts);
}

/** Message shown by skipped suites. */
export const sharedDataSkipReason = `shared data folder not found at ${sharedDataDir} (set RFID_MOE_DATA); skipping tests that need it`;

if (!hasSharedData) console.warn(sharedDataSkipReason);
