/**
 * Options several commands declare identically, declared once so their names, defaults and help
 * stay in step (engine parsing lives in src/engine/index.ts). Each returns fresh `Option` objects,
 * added in a command's chain with `addOptions(...)`.
 *
 * Every option shows its default in `--help`: a value commander fills in, or, where the default is
 * computed at run time (the model's tokenizer, the engine's thread count), `defaultText`.
 */
import { Option } from 'commander';
import { MATMUL_ACTIVATIONS } from '../engine/types.js';

/** The dataset formats `--dataset-format` accepts (one name in every command). */
export const DATASET_FORMATS = ['auto', 'text', 'jsonl', 'wikitext'] as const;

/** An option whose default is decided at run time: `--help` shows `text`, parsing leaves it undefined. */
export function defaultText(option: Option, text: string): Option {
  option.defaultValueDescription = text;
  return option;
}

/** `--engine` and `--threads` (calibrate, eval, compress). */
/** What commander parses from `engineOptions()`. */
export interface EngineCliOptions {
  engine: string;
  threads?: string;
}

export function engineOptions(): Option[] {
  return [
    new Option('--engine <engine>', 'linear-algebra engine').choices(['auto', 'native', 'ts', 'tfjs']).default('auto'),
    defaultText(new Option('--threads <n>', 'threads for large operations'), 'native: every core; ts: min(2, cores)'),
  ];
}

/** What commander parses from `matmulActivationsOption()`. */
export interface MatmulCliOptions {
  matmulActivations: string;
}

/** `--matmul-activations` (generate, serve, eval): MatmulActivations in src/engine/types.ts. */
export function matmulActivationsOption(): Option[] {
  return [
    new Option(
      '--matmul-activations <kind>',
      'what products against BF16 weights multiply them with: f32 activations as they are, or bf16 (rounded to BF16 first, as a model loaded in BF16 in PyTorch; ' +
        'on a CPU with BF16 dot products, AVX512_BF16, several sequences and prompts then run up to twice as fast, at the cost of the rounding)',
    )
      .choices(MATMUL_ACTIVATIONS)
      .default('f32'),
  ];
}

/** How a dataset file is read: `--tokenizer`, `--dataset-format`, `--text-field`. */
export function datasetTextOptions(tokenizerHelp: string): Option[] {
  return [
    defaultText(new Option('--tokenizer <path>', tokenizerHelp), "the model directory's tokenizer.json"),
    new Option('--dataset-format <format>', 'how the dataset file is read').choices(DATASET_FORMATS).default('auto'),
    new Option('--text-field <name>', 'JSONL field holding the text').default('text'),
  ];
}

/** `--json` and `--quiet` (every long command). */
/** What commander parses from `outputOptions()`. */
export interface OutputCliOptions {
  json?: boolean;
  quiet?: boolean;
}

export function outputOptions(jsonHelp: string): Option[] {
  return [new Option('--json', jsonHelp).default(false), new Option('--quiet', 'no progress on stderr').default(false)];
}

/** Adds every option of `options` to `command` (keeps command chains readable). */
export function addOptions<T extends { addOption(o: Option): T }>(command: T, ...groups: Option[][]): T {
  for (const group of groups) for (const option of group) command.addOption(option);
  return command;
}
