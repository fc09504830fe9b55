/**
 * Runs one of the project's Python scripts with a JSON job on stdin and parses the JSON it prints,
 * offline (no hub or dataset downloads) and quiet. Shared by the transformers reference
 * (scripts/hf_reference.py), the lm-evaluation-harness check (scripts/lm_eval_check.py) and the
 * benches that run them. No side effects at import, so a bench can use it.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';

export interface PythonJsonOptions {
  /** variables on top of the offline, quiet defaults (e.g. OMP_NUM_THREADS) */
  env?: Record<string, string>;
  /** pass the script's stderr (progress bars) through instead of keeping its tail for an error */
  inheritStderr?: boolean;
}

export async function runPythonJson<T>(python: string, script: string, input: unknown, opts: PythonJsonOptions = {}): Promise<T> {
  const child = spawn(python, [script], {
    env: {
      ...process.env,
      HF_HUB_OFFLINE: '1',
      TRANSFORMERS_OFFLINE: '1',
      HF_DATASETS_OFFLINE: '1',
      HF_HUB_DISABLE_PROGRESS_BARS: '1',
      TRANSFORMERS_VERBOSITY: 'error',
      TOKENIZERS_PARALLELISM: 'false',
      OMP_NUM_THREADS: process.env.OMP_NUM_THREADS ?? '2',
      ...opts.env,
    },
    stdio: ['pipe', 'pipe', opts.inheritStderr ? 'inherit' : 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  child.stdin!.end(JSON.stringify(input));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', resolve);
  });
  if (code !== 0) throw new Error(`scripts/${path.basename(script)} exited with ${code}${stderr ? `: ${stderr.slice(-3000)}` : ''}`);
  return JSON.parse(stdout) as T;
}
