/**
 * `rfid-moe doctor` as a user runs it (a child process, test/helpers/cli.ts): the JSON report follows its
 * schema and agrees with what loads in this process and with what is on disk.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { DoctorReportSchema, OPTIONAL_PACKAGES, type DoctorReport } from '../../src/engine/doctor.js';
import { loadTfjsEngine } from '../../src/engine/tfjs.js';
import { loadNativePeer, loadTsPeer, type EngineLoad } from '../../src/engine/tfjs/peer-engines.js';
import { repoRoot } from '../helpers/shared-data.js';
import { cliArgs } from '../helpers/cli.js';

const run = promisify(execFile);

async function doctor(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, [...cliArgs, 'doctor', ...args], { cwd: repoRoot, env, timeout: 60_000 });
}

async function doctorJson(env?: NodeJS.ProcessEnv): Promise<DoctorReport> {
  const { stdout } = await doctor(['--json'], env);
  const parsed = JSON.parse(stdout) as { ok?: unknown };
  expect(parsed.ok).toBe(true);
  return DoctorReportSchema.parse(parsed);
}

function describeLoad(load: EngineLoad): { available: boolean; describe?: string } {
  if (!load.ok) return { available: false };
  const result = { available: true, describe: load.engine.describe() };
  load.engine.dispose();
  return result;
}

describe('rfid-moe doctor', () => {
  it('--json reports engines consistent with what loads in-process, and what is installed', async () => {
    const report = await doctorJson();

    expect(report.node).toEqual({ version: process.version, platform: process.platform, arch: process.arch });
    expect(report.cpu.cores).toBe(os.availableParallelism());
    // the CPU flag and the native engine's own check agree where both exist
    const bf16Native = await loadNativePeer();
    if (bf16Native.ok && report.cpu.avx512bf16 !== null && !process.env.RFID_MOE_NATIVE_SIMD) {
      expect((bf16Native.engine as unknown as { openblas: { bf16Dot: boolean } }).openblas.bf16Dot).toBe(report.cpu.avx512bf16);
    }
    // AMX runs only where the CPU says it has the tiles (the OS may still refuse them)
    if (bf16Native.ok && report.cpu.amxBf16 === false) {
      expect((bf16Native.engine as unknown as { openblas: { simd: string } }).openblas.simd).not.toBe('amx');
    }
    if (bf16Native.ok && (bf16Native.engine as unknown as { openblas: { simd: string } }).openblas.simd === 'amx') expect(report.cpu.amxBf16).toBe(true);
    if (bf16Native.ok) bf16Native.engine.dispose();
    expect(report.engines.map((engine) => engine.name)).toEqual(['native', 'ts', 'tfjs']);

    const native = describeLoad(await loadNativePeer());
    const ts = describeLoad(await loadTsPeer());
    const tfjsLoad = await loadTfjsEngine();
    const tfjs = tfjsLoad.ok ? { available: true, describe: tfjsLoad.engine.describe(), backend: tfjsLoad.backend } : { available: false };
    if (tfjsLoad.ok) tfjsLoad.engine.dispose();

    const [nativeReport, tsReport, tfjsReport] = report.engines;
    for (const [reported, inProcess] of [
      [nativeReport, native],
      [tsReport, ts],
      [tfjsReport, tfjs],
    ] as const) {
      expect(reported.available, `${reported.name} availability`).toBe(inProcess.available);
      if (reported.available) expect(reported.describe).toBe(inProcess.describe);
      else expect(reported.reason.length * reported.fix.length).toBeGreaterThan(0);
    }
    if (tfjsReport.available && 'backend' in tfjs) expect(tfjsReport.kernel).toBe(tfjs.backend);

    expect(report.optionalPackages.map((pkg) => pkg.name)).toEqual([...OPTIONAL_PACKAGES]);
    for (const pkg of report.optionalPackages) {
      const manifest = path.join(repoRoot, 'node_modules', pkg.name, 'package.json');
      expect(pkg.installed, pkg.name).toBe(existsSync(manifest));
      if (pkg.installed) expect(pkg.version).toBe((JSON.parse(readFileSync(manifest, 'utf8')) as { version: string }).version);
    }
  }, 60_000);

  it('tells a user-set OPENBLAS_CORETYPE apart from one it chose or left unset', async () => {
    const userSet = await doctorJson({ ...process.env, OPENBLAS_CORETYPE: 'Haswell' });
    expect(userSet.openblasCoretype).toEqual({ value: 'Haswell', source: 'user' });
    const { OPENBLAS_CORETYPE: _removed, ...withoutCoretype } = process.env;
    const notSet = await doctorJson(withoutCoretype);
    expect(notSet.openblasCoretype.source).not.toBe('user');
    expect(notSet.openblasCoretype.value === null).toBe(notSet.openblasCoretype.source === 'unset');
  }, 60_000);

  it('prints a readable report with every engine and optional package, exit status 0', async () => {
    const { stdout } = await doctor([]);
    expect(stdout).toMatch(/^rfid-moe \S+ doctor\n/);
    for (const name of ['native', 'ts', 'tfjs']) expect(stdout).toMatch(new RegExp(`^  ${name} +(ok|no) `, 'm'));
    for (const name of OPTIONAL_PACKAGES) expect(stdout).toContain(name);
  }, 60_000);
});
