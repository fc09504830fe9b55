/**
 * What `npm pack` ships: the license file matching package.json's `license`, the repository, and
 * every file a consumer needs (the built library and CLI with their declarations, the native
 * addon's sources and build files, README, docs), and no tests.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/shared-data.js';

const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as {
  license: string;
  repository?: { type: string; url: string };
  files: string[];
  bin: Record<string, string>;
  main: string;
  types: string;
};

describe('package manifest', () => {
  it('LICENSE holds the license package.json names', () => {
    expect(pkg.license).toBe('Apache-2.0');
    const text = readFileSync(path.join(repoRoot, 'LICENSE'), 'utf8');
    expect(text).toMatch(/^\s*Apache License\s+Version 2\.0, January 2004/);
    expect(text).toContain('TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION');
    expect(text).toContain('END OF TERMS AND CONDITIONS');
  });

  it('names its repository', () => {
    expect(pkg.repository).toEqual({ type: 'git', url: 'git+https://github.com/rfid-moe/rfid-moe.git' });
  });

  it('the packed files are what a consumer needs, and no tests', () => {
    expect(existsSync(path.join(repoRoot, 'dist', 'index.js')), 'dist/ is missing: run `npm run build` first (`npm test` does)').toBe(true);
    const r = spawnSync('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: repoRoot, encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const files = new Set((JSON.parse(r.stdout) as Array<{ files: Array<{ path: string }> }>)[0].files.map((f) => f.path));
    const needed = [
      'package.json',
      'LICENSE',
      'README.md',
      'docs/method.md',
      'docs/formats.md',
      'docs/engines.md',
      'docs/evidence.md',
      'binding.gyp',
      'scripts/install-native.mjs',
      'native/addon.cc',
      'native/ops.h',
      pkg.main.replace(/^\.\//, ''),
      pkg.types.replace(/^\.\//, ''),
      ...Object.values(pkg.bin),
    ];
    expect(needed.filter((f) => !files.has(f))).toEqual([]);
    expect([...files].filter((f) => /\.test\.(js|ts|d\.ts)$|^test\//.test(f))).toEqual([]);
  });
});
