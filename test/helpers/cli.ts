/**
 * How the tests start `rfid-moe` in a child process, as a user runs it.
 *
 * Under `npm test` (the README's test command, which builds dist/ first) that is the compiled
 * `dist/cli/main.js` the package's bin points at: what an installed user runs, and each start
 * skips compiling the sources through tsx (about 0.7 s of CPU a start here, over a few hundred
 * starts in a run). Run any other way (`npx vitest run …` while editing, where dist/ may be stale
 * or absent), the sources through tsx, so a test always runs the code being edited.
 * RFID_MOE_TEST_CLI=src|dist overrides the choice.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { repoRoot } from './shared-data.js';

const SRC_MAIN = path.join(repoRoot, 'src', 'cli', 'main.ts');
const DIST_MAIN = path.join(repoRoot, 'dist', 'cli', 'main.js');

function chooseBuilt(): boolean {
  const asked = process.env.RFID_MOE_TEST_CLI;
  if (asked === 'dist') {
    if (!existsSync(DIST_MAIN)) throw new Error(`RFID_MOE_TEST_CLI=dist but ${DIST_MAIN} does not exist: run npm run build first`);
    return true;
  }
  if (asked === 'src') return false;
  if (asked !== undefined && asked !== '') throw new Error(`RFID_MOE_TEST_CLI must be src or dist, not ${JSON.stringify(asked)}`);
  return process.env.npm_lifecycle_event === 'test' && existsSync(DIST_MAIN);
}

/** Node arguments that start the CLI; append its own (`[...cliArgs, 'serve', dir]`). */
export const cliArgs: readonly string[] = chooseBuilt() ? [DIST_MAIN] : ['--import', 'tsx', SRC_MAIN];
