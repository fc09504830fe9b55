/**
 * Where `rfid-moe calibrate` may write. The statistics file replaces only a previous statistics
 * file (never a model's config.json, weights or any other file), and neither it nor the Gram
 * directory may sit inside a model directory: the model's own files are not ours to touch, and a
 * stray file there can change what the next loader sees.
 */
import { readdir, readFile, realpath, stat } from 'node:fs/promises';
import path from 'node:path';
import { GRAM_MANIFEST } from './gram.js';
import { ROUTING_STATS_FORMAT } from './schema.js';
import { RfidMoeError } from '../errors.js';

export class StatsOutputError extends RfidMoeError {
  readonly kind = 'StatsOutputError';
}

/** The real path of `p`, or of its nearest existing ancestor joined with the rest. */
async function realish(p: string): Promise<string> {
  const abs = path.resolve(p);
  try {
    return await realpath(abs);
  } catch {
    const parent = path.dirname(abs);
    return parent === abs ? abs : path.join(await realish(parent), path.basename(abs));
  }
}

const inside = (child: string, parent: string) => {
  const rel = path.relative(parent, child);
  return rel === '' || (!rel.startsWith('..') && !path.isAbsolute(rel));
};

/** Whether `dir` looks like a model directory: it holds a config.json or safetensors weights. */
async function isModelDir(dir: string): Promise<boolean> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return false;
  }
  return names.includes('config.json') || names.some((n) => (n.endsWith('.safetensors') && !n.endsWith('.gram.safetensors')) || n.endsWith('.safetensors.index.json'));
}

/**
 * `target` must not lie under the model directory, nor in a directory that holds another model
 * (`levels` containing directories are checked: 1 for a file, 2 for a directory's entries).
 */
async function checkNotInModelDir(option: string, target: string, modelDir: string, levels = 1): Promise<void> {
  const real = await realish(target);
  const model = await realish(modelDir);
  if (inside(real, model)) {
    throw new StatsOutputError(`${option} ${target} is inside the model directory ${modelDir}; write calibration output elsewhere (e.g. next to the model, not in it)`);
  }
  let dir = real;
  for (let i = 0; i < levels; i++) {
    dir = path.dirname(dir);
    if (await isModelDir(dir)) throw new StatsOutputError(`${option} ${target} is inside a model directory (${dir} holds config.json or safetensors weights); write calibration output elsewhere`);
  }
}

/** Refuses a --out path that would overwrite anything but a statistics file, or lies in a model directory. */
export async function checkStatsOutPath(out: string, modelDir: string): Promise<void> {
  if (/\.safetensors$|\.safetensors\.index\.json$|(^|[\\/])config\.json$/i.test(out)) {
    throw new StatsOutputError(`\`out\` ${out} names a model file; the statistics file needs its own name, e.g. stats.json`);
  }
  await checkNotInModelDir('\`out\`', out, modelDir);
  let info;
  try {
    info = await stat(out);
  } catch {
    return; // a new file
  }
  if (!info.isFile()) throw new StatsOutputError(`\`out\` ${out} exists and is not a file; pass the path of the statistics file to write, e.g. stats.json`);
  let format: unknown;
  try {
    format = (JSON.parse(await readFile(out, 'utf8')) as { format?: unknown }).format;
  } catch {
    format = undefined;
  }
  if (format !== ROUTING_STATS_FORMAT) {
    throw new StatsOutputError(`\`out\` ${out} exists and is not an rfid-moe statistics file; refusing to overwrite it. Choose a new file name, or delete the file yourself`);
  }
}

/** Refuses a --grams directory in a model directory, or a non-empty one that holds no Gram matrices. */
export async function checkGramsOutDir(dir: string, modelDir: string): Promise<void> {
  await checkNotInModelDir('\`grams\`', path.join(dir, GRAM_MANIFEST), modelDir, 2);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return;
  }
  if (names.length > 0 && !names.includes(GRAM_MANIFEST) && !names.every((n) => n.endsWith('.gram.safetensors'))) {
    throw new StatsOutputError(`\`grams\` ${dir} is not empty and holds no Gram matrices; choose an empty or new directory`);
  }
}
