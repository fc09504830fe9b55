/**
 * One family of errors: every error class the source defines extends RfidMoeError, its `kind` is
 * its class name (PascalCase, ending in "Error"), and finer variants use the same style. Library
 * code (everything outside src/cli) names options, never command-line flags.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { RfidMoeError } from '../../src/errors.js';
import { CheckpointError } from '../../src/checkpoint/errors.js';
import { SafetensorsError } from '../../src/io/errors.js';
import * as library from '../../src/index.js';
import { repoRoot } from '../helpers/shared-data.js';

const src = path.join(repoRoot, 'src');

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const file = path.join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(file);
    return e.name.endsWith('.ts') && !e.name.endsWith('.test.ts') && !e.name.endsWith('.d.ts') ? [file] : [];
  });
}

/** Modules that run something when imported (the CLI entry point and its commands). */
const ENTRY_POINTS = /src\/cli\/(main|commands\/)/;

async function errorClasses(): Promise<Array<{ file: string; name: string; cls: new (...args: never[]) => Error }>> {
  const found = [];
  for (const file of sourceFiles(src).filter((f) => !ENTRY_POINTS.test(f))) {
    const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    for (const [name, value] of Object.entries(mod)) {
      if (typeof value === 'function' && value.prototype instanceof Error) found.push({ file: path.relative(repoRoot, file), name, cls: value as new (...args: never[]) => Error });
    }
  }
  return found;
}

describe('error classes', () => {
  it('every one extends RfidMoeError and its kind is its PascalCase class name', async () => {
    const classes = (await errorClasses()).filter((c) => c.cls !== (RfidMoeError as unknown));
    expect(classes.length).toBeGreaterThan(15);
    for (const { file, name, cls } of classes) {
      expect(cls.prototype instanceof RfidMoeError, `${file}: ${name} does not extend RfidMoeError`).toBe(true);
      // (variant, message) suits the classes with variants; the others take (message)
      const err = new (cls as unknown as new (a: string, b: string) => RfidMoeError)('Variant', 'message');
      expect(err.kind, `${file}: ${name}`).toBe(name);
      expect(err.name, `${file}: ${name}`).toBe(name);
      expect(err.kind).toMatch(/^[A-Z][A-Za-z]*Error$/);
    }
  });

  it('variants are PascalCase too', () => {
    const checkpoint = new CheckpointError('MissingConfig', 'x');
    expect(checkpoint).toMatchObject({ kind: 'CheckpointError', variant: 'MissingConfig' });
    const io = new SafetensorsError('HeaderTooSmall', 'x');
    expect(io).toMatchObject({ kind: 'SafetensorsError', variant: 'HeaderTooSmall' });
    // every variant literal named in the sources is PascalCase
    for (const [file, pattern] of [
      ['src/checkpoint/errors.ts', /^\s*\| '([^']+)'/gm],
      ['src/io/errors.ts', /^\s*\| '([^']+)'/gm],
    ] as const) {
      const variants = [...readFileSync(path.join(repoRoot, file), 'utf8').matchAll(pattern)].map((m) => m[1]);
      expect(variants.length, file).toBeGreaterThan(5);
      for (const v of variants) expect(v, file).toMatch(/^[A-Z][A-Za-z]*$/);
    }
  });

  it('the base class is part of the public API', () => {
    expect(library.RfidMoeError).toBe(RfidMoeError);
    expect(new library.CheckpointError('NotFound', 'x')).toBeInstanceOf(library.RfidMoeError);
  });

  it('library code names options, not command-line flags', () => {
    const offenders: string[] = [];
    for (const file of sourceFiles(src).filter((f) => !f.includes(`${path.sep}cli${path.sep}`))) {
      readFileSync(file, 'utf8')
        .split('\n')
        .forEach((line, i) => {
          const code = line.trimStart();
          if (code.startsWith('*') || code.startsWith('//') || code.startsWith('/*')) return;
          // V8's own flags (set programmatically) are not command-line flags of this tool
          if (/--[a-z][a-z-]+/.test(code) && !code.includes('setFlagsFromString')) offenders.push(`${path.relative(repoRoot, file)}:${i + 1}: ${code}`);
        });
    }
    expect(offenders).toEqual([]);
  });
});
