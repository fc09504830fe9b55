import { availableParallelism } from 'node:os';
import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['src/**/*.test.ts', 'test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    // vitest's default (one fewer than the cores) runs a single file at a time on a 2-core CI
    // machine, though much of the suite waits on Python, servers and the disk: two at a time there
    maxWorkers: Math.max(2, availableParallelism() - 1),
  },
});
