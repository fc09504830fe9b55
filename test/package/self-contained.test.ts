/**
 * The repository refers to nothing outside itself: no path into a sibling folder of the checkout,
 * no document that is not in the repository, no "issue" that a reader cannot open. Every
 * mentioned Markdown file (`method.md`, `docs/formats.md`, `../../../docs/method.md`, …) must
 * exist: relative to the mentioning file, at the repository root, or under docs/.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/shared-data.js';

/** CI's entry point is the one place that may know where the CI machine keeps the test data. */
const ALLOWED_OUTSIDE = new Set(['.ci/run']);
/** Scripts that write Markdown elsewhere: their relative links are relative to that place. */
const WRITES_INTO: Record<string, string> = { 'scripts/train_demo_moe.py': 'examples/models/mixtral-tiny-shakespeare' };
/** File names the tool writes, mentioned as such (not documents of this repository). */
/** Markdown files the tools write into their output folders (never part of the repository) */
const GENERATED_MD = new Set(['rfid-moe-report.md', 'QUICK.md']);
const TEXT = /\.(ts|mts|mjs|js|py|md|json|sh|cc|h|gyp|yml|yaml|txt)$|^\.ci\/run$/;

function trackedTextFiles(): string[] {
  const files = execFileSync('git', ['ls-files', '--cached', '--others', '--exclude-standard'], { cwd: repoRoot, encoding: 'utf8' }).split('\n').filter(Boolean);
  return files.filter((f) => TEXT.test(f) && f !== 'package-lock.json' && existsSync(path.join(repoRoot, f)));
}

const OUTSIDE = [/\.\.\/shared(?![\w-])/, /\bshared\/(data|docs)\b/, /\/work\//, /\bthe issue\b/i, /\bissue #?\d+\b/i];

describe('a self-contained repository', () => {
  const files = trackedTextFiles();

  it('finds the files to check', () => {
    expect(files).toContain('README.md');
    expect(files.length).toBeGreaterThan(100);
  });

  it('no file points outside the repository', () => {
    const offenders: string[] = [];
    for (const file of files) {
      if (ALLOWED_OUTSIDE.has(file) || file === 'test/package/self-contained.test.ts') continue;
      readFileSync(path.join(repoRoot, file), 'utf8')
        .split('\n')
        .forEach((line, i) => {
          for (const pattern of OUTSIDE) if (pattern.test(line)) offenders.push(`${file}:${i + 1}: ${line.trim()}`);
        });
    }
    expect(offenders).toEqual([]);
  });

  it('every Markdown file a file mentions exists in the repository', () => {
    const missing: string[] = [];
    for (const file of files) {
      if (file === 'test/package/self-contained.test.ts') continue;
      const text = readFileSync(path.join(repoRoot, file), 'utf8');
      for (const m of text.matchAll(/(?<![\w/.<>-])((?:\.{1,2}\/|[\w-]+\/)*[\w-]+\.md)\b/g)) {
        const ref = m[1];
        if (GENERATED_MD.has(path.basename(ref))) continue;
        const base = WRITES_INTO[file] ?? path.dirname(file);
        const candidates = [path.join(repoRoot, base, ref), path.join(repoRoot, ref), path.join(repoRoot, 'docs', ref)];
        if (!candidates.some((c) => existsSync(c) && c.startsWith(repoRoot + path.sep))) missing.push(`${file}: ${ref}`);
      }
    }
    expect([...new Set(missing)]).toEqual([]);
  });
});
