/**
 * The sharded pipeline under a real Slurm (scripts/slurm-test.sh): a single-node cluster started
 * for the test, calibration and compression as job arrays of 4 tasks, the merges as dependent
 * jobs, results compared byte for byte with one-process runs. Needs root and Debian's slurm-wlm
 * and munge (CI installs them); elsewhere it is skipped with a message, except under CI=true.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/shared-data.js';

const run = promisify(execFile);
const tools = ['/usr/sbin/munged', '/usr/sbin/slurmctld', '/usr/sbin/slurmd', '/usr/bin/sbatch'];
const missing = tools.filter((t) => !existsSync(t));
const isRoot = process.getuid?.() === 0;
const available = missing.length === 0 && isRoot;
const reason = missing.length > 0 ? `Slurm test skipped: ${missing.join(', ')} not installed (apt-get install slurm-wlm munge)` : 'Slurm test skipped: it needs root to start munged and slurmd';
if (!available) console.warn(reason);

describe('sharded pipeline under Slurm', () => {
  it.runIf(!available && process.env.CI === 'true')('is available in CI', () => {
    expect.fail(reason);
  });

  it.runIf(available)('job arrays + dependent merges give the bytes of one-process runs', async () => {
    const { stdout } = await run(path.join(repoRoot, 'scripts', 'slurm-test.sh'), [path.join(repoRoot, 'examples', 'models', 'mixtral-tiny-shakespeare')], { cwd: repoRoot, timeout: 900_000, maxBuffer: 16 << 20 });
    expect(stdout).toMatch(/byte-identical to one-process runs/);
    expect(stdout).toMatch(/slurm-test: passed/);
  }, 900_000);
});
