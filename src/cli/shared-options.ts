/**
 * Options several commands declare identically, declared once so their names, defaults and help
 * stay in step (parsing lives in src/tokens/cli-options.ts and src/engine/index.ts). Each returns
 * fresh `Option` objects, added in a command's chain with `.addOption(...)`.
 */
import { Option } from 'commander';

/** `--engine` and `--threads` (calibrate, eval, compress). */
export function engineOptions(): Option[] {
  return [new Option('--engine <engine>', 'auto | native | ts | tfjs').default('auto'), new Option('--threads <n>', 'threads for large operations')];
}

/** How a dataset file is read: `--tokenizer`, `--<formatFlag>`, `--text-field`. */
export function datasetTextOptions(formatFlag: 'format' | 'dataset-format', tokenizerHelp: string): Option[] {
  return [
    new Option('--tokenizer <path>', tokenizerHelp),
    new Option(`--${formatFlag} <format>`, 'dataset format: auto | text | jsonl | wikitext').default('auto'),
    new Option('--text-field <name>', 'JSONL field holding the text').default('text'),
  ];
}

/** Adds every option of `options` to `command` (keeps command chains readable). */
export function addOptions<T extends { addOption(o: Option): T }>(command: T, ...groups: Option[][]): T {
  for (const group of groups) for (const option of group) command.addOption(option);
  return command;
}
