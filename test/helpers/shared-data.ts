/**
 * Locates the read-only test data folder (WikiText-2, PTB, Tiny Shakespeare, the GPT-2 tokenizer,
 * safetensors golden vectors), which is not part of the repository. Tests find it only through
 * the environment variable RFID_MOE_DATA; suites that need it are skipped with a message saying
 * how to set it when it is absent (a user's fresh clone), never failed. `.ci/run` sets it when
 * the data is available on the CI machine.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** The data folder, or undefined when RFID_MOE_DATA is unset or empty. */
export const sharedDataDir: string | undefined = process.env.RFID_MOE_DATA ? path.resolve(process.env.RFID_MOE_DATA) : undefined;

export const hasSharedData: boolean = sharedDataDir !== undefined && existsSync(sharedDataDir);

/** Absolute path of a file under the data folder (only meaningful when `hasSharedData`). */
export function sharedPath(...parts: string[]): string {
  return path.join(sharedDataDir ?? path.join(repoRoot, '.no-test-data'), ...parts);
}

/** Message shown by skipped suites. */
export const sharedDataSkipReason =
  sharedDataDir === undefined
    ? 'RFID_MOE_DATA is not set: skipping the tests that need the test data folder (set RFID_MOE_DATA=/path/to/data, the folder holding wikitext-2-raw/, ptb/, gpt2-tokenizer/, …)'
    : `RFID_MOE_DATA=${sharedDataDir} does not exist: skipping the tests that need the test data folder`;

if (!hasSharedData) console.warn(sharedDataSkipReason);
