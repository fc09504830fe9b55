/**
 * The tool-call formats the server reads, by name, and the one a chat template implies (tried in
 * this order: Qwen3-Coder's and GLM-4.5's templates hold Hermes's `<tool_call>` too).
 */
import type { ToolCallFormat } from './format.js';
import { deepseek } from './deepseek.js';
import { glm45 } from './glm45.js';
import { granite } from './granite.js';
import { hermes } from './hermes.js';
import { minimaxM2 } from './minimax-m2.js';
import { mistral } from './mistral.js';
import { qwen3Coder } from './qwen3-coder.js';

export { callFromJson, tryJson, type CallStream, type OpenCall, type ParsedCall, type ToolCallFormat } from './format.js';

export const TOOL_CALL_FORMATS: ReadonlyMap<string, ToolCallFormat> = new Map([qwen3Coder, glm45, minimaxM2, hermes, mistral, deepseek, granite].map((f) => [f.name, f]));

/** The format whose calls the template writes (null: none this server knows, or no template). */
export function detectToolCallFormat(template: string | null): ToolCallFormat | null {
  if (template === null) return null;
  for (const f of TOOL_CALL_FORMATS.values()) if (f.detect(template)) return f.forTemplate?.(template) ?? f;
  return null;
}
