/**
 * The text the examples evaluate and calibrate on, from a data folder given as `--data <dir>`
 * (layout: wikitext-2-raw/wiki.test.raw and wiki.valid.raw, ptb/ptb.test.txt,
 * tinyshakespeare/input.txt; the README says where to get them):
 *
 * - evaluation: WikiText-2 test (rows joined with "\n\n", docs/method.md), PTB test (plain text), and
 *   the held-out tails of the demo model's two training files (the training domain);
 * - calibration: windows from the *training* parts of the same two files, never a test set.
 *
 * The train / held-out cut mirrors `split_train_held_out` in scripts/train_bpe_tokenizer.py
 * exactly, so "held out" here is the text the demo model never saw.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadDataset, type DatasetFormat } from '../../src/tokens/dataset.js';
import { encodeText, type LoadedTokenizer } from '../../src/tokens/tokenizer.js';
import { calibrationWindows } from '../../src/tokens/windows.js';

/** The trainer's HELD_OUT_FRACTION (scripts/train_bpe_tokenizer.py). */
export const HELD_OUT_FRACTION = 0.05;

/**
 * (train, heldOut) as Python's split_train_held_out: the cut is the first line start at or after
 * ⌊len · (1 − fraction)⌋, where len counts code points (Python `len`), not UTF-16 units.
 */
export function splitTrainHeldOut(text: string, fraction = HELD_OUT_FRACTION): { train: string; heldOut: string } {
  const codePoints = Array.from(text);
  const cutCodePoint = Math.floor(codePoints.length * (1 - fraction));
  const cutUnit = codePoints.slice(0, cutCodePoint).join('').length;
  const newline = text.indexOf('\n', cutUnit);
  const cut = newline < 0 ? text.length : newline + 1;
  return { train: text.slice(0, cut), heldOut: text.slice(cut) };
}

export interface EvalSet {
  /** short key used in JSON and table headers */
  key: string;
  label: string;
  /** what the text is, for RESULTS.md */
  description: string;
  ids: Int32Array;
  /** the training domain: also compared against the original (KL, top-1) */
  trainingDomain: boolean;
}

interface EvalSource {
  key: string;
  label: string;
  file: string;
  format: DatasetFormat;
  part: 'all' | 'held-out';
  trainingDomain: boolean;
}

const TRAINING_FILES = [
  { key: 'shakespeare', label: 'Shakespeare held-out', file: path.join('tinyshakespeare', 'input.txt') },
  { key: 'wikivalid', label: 'WikiText-2 valid held-out', file: path.join('wikitext-2-raw', 'wiki.valid.raw') },
] as const;

const EVAL_SOURCES: EvalSource[] = [
  { key: 'wikitext2', label: 'WikiText-2 test', file: path.join('wikitext-2-raw', 'wiki.test.raw'), format: 'wikitext', part: 'all', trainingDomain: false },
  { key: 'ptb', label: 'PTB test', file: path.join('ptb', 'ptb.test.txt'), format: 'text', part: 'all', trainingDomain: false },
  ...TRAINING_FILES.map((t) => ({ ...t, format: 'text' as const, part: 'held-out' as const, trainingDomain: true })),
];

/** Keys of the evaluation sets, in the order they are evaluated and tabulated. */
export const EVAL_SET_KEYS: readonly string[] = EVAL_SOURCES.map((s) => s.key);

/**
 * Every evaluation set present under `dataDir`, tokenized once. Test sets go through the
 * library's loader (WikiText rows joined with "\n\n"); held-out tails are encoded raw, as the
 * trainer encodes them, so the original's numbers can be checked against the model card.
 */
export async function loadEvalSets(dataDir: string, tokenizer: LoadedTokenizer, log: (line: string) => void): Promise<EvalSet[]> {
  const sets: EvalSet[] = [];
  for (const source of EVAL_SOURCES) {
    const file = path.join(dataDir, source.file);
    if (!existsSync(file)) {
      log(`skipping ${source.label}: ${file} is missing`);
      continue;
    }
    if (source.part === 'all') {
      const { text } = await loadDataset(file, { format: source.format });
      sets.push({
        key: source.key,
        label: source.label,
        description: `${source.file}, whole file${source.format === 'wikitext' ? ' (rows joined with "\\n\\n")' : ''}`,
        ids: encodeText(tokenizer, text),
        trainingDomain: false,
      });
    } else {
      const { heldOut } = splitTrainHeldOut(readFileSync(file, 'utf8'));
      sets.push({
        key: source.key,
        label: source.label,
        description: `${source.file}, last ${HELD_OUT_FRACTION * 100}% (cut at a line start; never trained on)`,
        ids: encodeText(tokenizer, heldOut),
        trainingDomain: true,
      });
    }
  }
  return sets;
}

export interface CalibrationSet {
  windows: Int32Array[];
  description: string;
  /** for the routing-statistics document */
  tokens: number;
  files: string[];
}

/**
 * `samples` windows of `seqLen` tokens drawn with `seed` from the training parts of the demo
 * model's training files (split evenly between the files present): calibration text the model
 * was trained on, disjoint from every evaluation set.
 */
export function loadCalibration(dataDir: string, tokenizer: LoadedTokenizer, samples: number, seqLen: number, seed: number): CalibrationSet {
  const present = TRAINING_FILES.filter((t) => existsSync(path.join(dataDir, t.file)));
  if (present.length === 0) {
    throw new Error(`no calibration text: neither ${TRAINING_FILES.map((t) => t.file).join(' nor ')} exists under ${dataDir}; pass --data <data folder>`);
  }
  const windows: Int32Array[] = [];
  let tokens = 0;
  present.forEach((t, i) => {
    const share = Math.floor(samples / present.length) + (i < samples % present.length ? 1 : 0);
    if (share === 0) return;
    const ids = encodeText(tokenizer, splitTrainHeldOut(readFileSync(path.join(dataDir, t.file), 'utf8')).train);
    tokens += ids.length;
    windows.push(...calibrationWindows(ids, share, seqLen, seed));
  });
  return {
    windows,
    tokens,
    files: present.map((t) => t.file),
    description: `${samples} windows of ${seqLen} tokens (seed ${seed}) from the training parts (first ${100 - HELD_OUT_FRACTION * 100}%) of ${present.map((t) => t.file).join(' and ')}`,
  };
}
