/**
 * `rfid-moe doctor [--json]`: which linear-algebra engines load on this machine and why the others
 * do not, with the fix for each. Exit status 0 whenever the report could be made (an unavailable
 * engine is a finding, not a failure); 2 only when probing itself breaks.
 */
import type { Command } from 'commander';
import { runDoctor, type DoctorReport, type EngineReport, type PackageReport } from '../../engine/doctor.js';

/**
 * What @tensorflow/tfjs-node-gpu 4.22 needs, from its documentation (the tfjs-node README): it
 * bundles libtensorflow 2.9.1, built against CUDA 11.2 and cuDNN 8.1. README.md and
 * docs/engines.md state the same (test/package/docs.test.ts keeps them in step).
 */
export const TFJS_NODE_GPU_NEEDS = { driver: '450', cuda: '11.2', cudnn: '8.1' } as const;
const GPU_HINT = `for GPU GEMM: npm i @tensorflow/tfjs-node-gpu (4.22 needs an NVIDIA driver > ${TFJS_NODE_GPU_NEEDS.driver}, CUDA ${TFJS_NODE_GPU_NEEDS.cuda} and cuDNN ${TFJS_NODE_GPU_NEEDS.cudnn})`;

function yesNo(value: boolean | null): string {
  return value === null ? 'unknown' : value ? 'yes' : 'no';
}

function engineLines(engine: EngineReport): string[] {
  const label = engine.name.padEnd(8);
  if (engine.available) return [`  ${label}ok   ${engine.describe}`];
  return [`  ${label}no   ${engine.reason}`, `  ${' '.repeat(8)}     fix: ${engine.fix}`];
}

function packageLine(pkg: PackageReport): string {
  const name = pkg.name.padEnd(32);
  if (pkg.installed) return `  ${name}${pkg.version}  (${pkg.path})`;
  return `  ${name}not installed${pkg.name.endsWith('-gpu') ? `  (${GPU_HINT})` : ''}`;
}

function coretypeLine(coretype: DoctorReport['openblasCoretype']): string {
  switch (coretype.source) {
    case 'user':
      return `OPENBLAS_CORETYPE=${coretype.value} (set by you)`;
    case 'rfid-moe':
      return `OPENBLAS_CORETYPE=${coretype.value} (chosen by rfid-moe for this CPU)`;
    case 'unset':
      return 'OPENBLAS_CORETYPE unset (OpenBLAS detects the CPU itself)';
  }
}

export function formatDoctorReport(report: DoctorReport): string {
  const libs = report.systemLibraries;
  const lines = [
    `rfid-moe ${report.tool.version} doctor`,
    `node        ${report.node.version} (${report.node.platform} ${report.node.arch})`,
    `cpu         ${report.cpu.model}, ${report.cpu.cores} cores, avx2 ${yesNo(report.cpu.avx2)}, avx512f ${yesNo(report.cpu.avx512f)}, avx512_bf16 ${yesNo(report.cpu.avx512bf16)}, amx_bf16 ${yesNo(report.cpu.amxBf16)}${report.cpu.amxBf16 ? ' (BF16 matmul activations run on AMX tiles where the OS grants them)' : report.cpu.avx512bf16 ? ' (BF16 matmul activations run on BF16 dot products)' : ''}`,
    `openblas    ${coretypeLine(report.openblasCoretype)}`,
    `gpu         ${report.gpu.nvidiaDriver ?? 'no NVIDIA driver loaded'}`,
    'engines',
    ...report.engines.flatMap(engineLines),
    'optional packages',
    ...report.optionalPackages.map(packageLine),
    'system libraries',
    `  libopenblas   ${libs.openblas.join(', ') || 'not found'}${libs.openblasVersion ? ` (headers: OpenBLAS ${libs.openblasVersion})` : ''}`,
    `  liblapacke    ${libs.lapacke.join(', ') || 'not found'}`,
    `  cblas.h       ${libs.headers.cblas ?? 'not found'}`,
    `  lapacke.h     ${libs.headers.lapacke ?? 'not found'}`,
  ];
  return lines.join('\n') + '\n';
}

export function register(program: Command): void {
  program
    .command('doctor')
    .description('Report the linear-algebra engines available here (versions, kernels, threads), Node, CPU features and optional GPU packages.')
    .option('--json', 'print the report as one JSON object', false)
    .action(async (options: { json: boolean }) => {
      const report = await runDoctor();
      process.stdout.write(options.json ? JSON.stringify({ ok: true, ...report }) + '\n' : formatDoctorReport(report));
    });
}
