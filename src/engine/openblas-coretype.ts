/**
 * OpenBLAS kernel selection. Debian's OpenBLAS 0.3.21 does not recognise recent CPUs and then
 * silently runs its SSE3 kernels, about 4.7× slower (docs/engines.md). OpenBLAS reads
 * OPENBLAS_CORETYPE once, when the shared library loads, so this must run before the native
 * addon is `require`d. A value the user has set always wins; an AVX-512 kernel is only chosen
 * when the CPU reports avx512f (forcing it elsewhere would crash with SIGILL).
 */
import { readFileSync } from 'node:fs';

export type CoretypeSource = 'user' | 'detected' | 'none';

export interface CoretypeDecision {
  /** the value OPENBLAS_CORETYPE holds after the decision (undefined: OpenBLAS detects) */
  coretype: string | undefined;
  /** 'user': already set in the environment; 'detected': set here from the CPU flags; 'none': left unset */
  source: CoretypeSource;
}

/** The CPU feature flags of the first processor in /proc/cpuinfo text (x86 "flags" line). */
export function parseCpuFlags(cpuinfo: string): Set<string> {
  const line = cpuinfo.split('\n').find((l) => /^flags\s*:/.test(l));
  if (line === undefined) return new Set();
  return new Set(line.slice(line.indexOf(':') + 1).trim().split(/\s+/));
}

/** SkylakeX kernels need avx512f, Haswell kernels need avx2; otherwise let OpenBLAS decide. */
export function coretypeForCpuFlags(flags: ReadonlySet<string>): string | undefined {
  if (flags.has('avx512f')) return 'SkylakeX';
  if (flags.has('avx2')) return 'Haswell';
  return undefined;
}

/** Pure decision: the user's non-empty OPENBLAS_CORETYPE, else one derived from cpuinfo text. */
export function decideOpenblasCoretype(userValue: string | undefined, cpuinfo: string | undefined): CoretypeDecision {
  if (userValue !== undefined && userValue.trim() !== '') return { coretype: userValue, source: 'user' };
  const detected = cpuinfo === undefined ? undefined : coretypeForCpuFlags(parseCpuFlags(cpuinfo));
  return detected === undefined ? { coretype: undefined, source: 'none' } : { coretype: detected, source: 'detected' };
}

function readProcCpuinfo(): string | undefined {
  try {
    return readFileSync('/proc/cpuinfo', 'utf8');
  } catch {
    return undefined; // not Linux: OpenBLAS's own detection is all there is
  }
}

/**
 * Decides and, when a kernel was detected (not user-set), writes it to `env`
 * (process.env by default, which is the real process environment OpenBLAS will read).
 */
export function applyOpenblasCoretype(
  env: NodeJS.ProcessEnv = process.env,
  readCpuinfo: () => string | undefined = readProcCpuinfo,
): CoretypeDecision {
  const userValue = env.OPENBLAS_CORETYPE;
  const decision = decideOpenblasCoretype(userValue, userValue?.trim() ? undefined : readCpuinfo());
  if (decision.source === 'detected' && decision.coretype !== undefined) env.OPENBLAS_CORETYPE = decision.coretype;
  return decision;
}
