/**
 * Pieces of the regular expressions that hold a tagged tool-call block to the tools' calls
 * (ToolCallFormat.heldPattern: Qwen3-Coder's and GLM-4.5's formats): a text matched as itself, and
 * any text that does not hold the format's closing tags.
 */
import { DFA, JS, NFA } from 'refa';

/** a regex's special characters escaped, so the text matches itself */
export const literal = (text: string): string => text.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');

const freeTexts = new Map<string, string>();

/**
 * Any text that does not hold one of `tags`: the complement of the texts that do, as refa builds
 * it (a regex for "not containing" is long to write by hand and easy to get wrong). Built once per
 * set of tags.
 */
export function textWithout(tags: readonly string[]): string {
  const key = JSON.stringify(tags);
  let text = freeTexts.get(key);
  if (text === undefined) {
    const { expression, maxCharacter } = JS.Parser.fromLiteral({ source: `[^]*(?:${tags.map(literal).join('|')})[^]*`, flags: 'u' }).parse();
    const dfa = DFA.fromFA(NFA.fromRegex(expression, { maxCharacter }));
    dfa.complement();
    dfa.minimize();
    text = JS.toLiteral(dfa.toRegex()).source;
    freeTexts.set(key, text);
  }
  return text;
}
