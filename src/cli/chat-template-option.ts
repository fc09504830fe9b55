/**
 * A chat template given on the command line (serve's and generate's --chat-template): a file, or,
 * where no such file exists and the value holds Jinja's `{{` or `{%`, the template itself (as
 * vLLM reads its --chat-template).
 */
import { existsSync, readFileSync } from 'node:fs';
import { OptionError } from './options.js';

export function readChatTemplate(source: string): string {
  if (existsSync(source)) {
    try {
      return readFileSync(source, 'utf8');
    } catch (err) {
      throw new OptionError(`--chat-template: ${source} cannot be read (${(err as Error).message})`);
    }
  }
  if (/\{\{|\{%/.test(source)) return source;
  throw new OptionError(`--chat-template: no file ${source} (give a template file, or the template text itself)`);
}
