/**
 * A consumer project, as `npm install rfid-moe` leaves it: node_modules/rfid-moe holds the
 * package.json and the declarations the build emits (dist/**.d.ts), beside only the package's
 * own dependencies and @types/node, none of the optional tfjs peers. `typecheck` compiles the
 * consumer's files with strict settings and `skipLibCheck: false`, so every public declaration
 * (and whatever it imports) is checked as a user's compiler would.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from '../helpers/shared-data.js';

const tsc = path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc');

export interface Consumer {
  dir: string;
  /** type-checks `files` (relative to dir); returns tsc's exit status and output */
  typecheck(files: string[], compilerOptions?: Record<string, unknown>): { status: number | null; output: string };
}

/** The package's runtime dependencies, as package.json lists them. */
function dependencies(): string[] {
  const pkg = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { dependencies?: Record<string, string> };
  return Object.keys(pkg.dependencies ?? {});
}

export function makeConsumer(): Consumer {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rfid-consumer-'));
  const pkgDir = path.join(dir, 'node_modules', 'rfid-moe');
  mkdirSync(pkgDir, { recursive: true });
  writeFileSync(path.join(pkgDir, 'package.json'), readFileSync(path.join(repoRoot, 'package.json')));
  // the declarations exactly as the build emits them
  const build = spawnSync(process.execPath, [tsc, '-p', path.join(repoRoot, 'tsconfig.json'), '--emitDeclarationOnly', '--declaration', '--outDir', path.join(pkgDir, 'dist')], { encoding: 'utf8' });
  if (build.status !== 0) throw new Error(`building the declarations failed:\n${build.stdout}${build.stderr}`);
  for (const dep of [...dependencies(), '@types/node']) {
    const target = path.join(dir, 'node_modules', dep);
    mkdirSync(path.dirname(target), { recursive: true });
    symlinkSync(path.join(repoRoot, 'node_modules', dep), target, 'dir');
  }
  writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  return {
    dir,
    typecheck(files, compilerOptions = {}) {
      const config = {
        compilerOptions: {
          strict: true,
          target: 'ES2022',
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          lib: ['ES2022'],
          types: ['node'],
          skipLibCheck: false,
          noEmit: true,
          ...compilerOptions,
        },
        files,
      };
      const configFile = path.join(dir, `tsconfig.${Math.random().toString(36).slice(2)}.json`);
      writeFileSync(configFile, JSON.stringify(config, null, 2));
      const r = spawnSync(process.execPath, [tsc, '-p', configFile, '--pretty', 'false'], { cwd: dir, encoding: 'utf8' });
      return { status: r.status, output: `${r.stdout}${r.stderr}` };
    },
  };
}
