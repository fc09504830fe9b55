/**
 * An independent judge of JSON prefixes, V8's own JSON.parse: `text` can still become one JSON
 * object when JSON.parse accepts it, or fails only because the input ended (its message says
 * "Unexpected end of JSON input", or gives the text's length as the position of the failure; an
 * invalid character is reported at its own position, before the end). The JSON-mode tests hold
 * src/runtime/generation/json-prefix.ts and the generated text to it.
 */
export function viableJsonObject(text: string): boolean {
  const first = /^[ \t\n\r]*(.)?/s.exec(text)![1];
  if (first !== undefined && first !== '{') return false;
  try {
    JSON.parse(text);
    return true;
  } catch (err) {
    const message = (err as Error).message;
    if (message.includes('Unexpected end of JSON input')) return true;
    const at = /at position (\d+)/.exec(message);
    return at !== null && Number(at[1]) === text.length;
  }
}

/** `text` is one complete JSON object (JSON.parse accepts it and gives an object). */
export function isJsonObject(text: string): boolean {
  try {
    const v: unknown = JSON.parse(text);
    return typeof v === 'object' && v !== null && !Array.isArray(v);
  } catch {
    return false;
  }
}

/** The longest run of JSON whitespace outside strings in a JSON text (or beginning of one), and the most line breaks in one run. */
export function whitespaceRuns(text: string): { longest: number; mostNewlines: number } {
  let inString = false;
  let escaped = false;
  let run = 0;
  let newlines = 0;
  let longest = 0;
  let mostNewlines = 0;
  for (const ch of text) {
    if (inString) {
      if (escaped) escaped = false;
      else if (ch === '\\') escaped = true;
      else if (ch === '"') inString = false;
      continue;
    }
    if (ch === ' ' || ch === '\n' || ch === '\r' || ch === '\t') {
      longest = Math.max(longest, ++run);
      if (ch === '\n') mostNewlines = Math.max(mostNewlines, ++newlines);
      continue;
    }
    run = newlines = 0;
    if (ch === '"') inString = true;
  }
  return { longest, mostNewlines };
}

/**
 * Whether JSON mode may add the token that turns the completion's text `before` into `after`: the
 * text must change and stay a viable object, with no more than `maxWhitespace` whitespace
 * characters, and `maxNewlines` line breaks, in a row outside strings (JSON mode's limits); a
 * trailing U+FFFD (a character whose last bytes have not arrived) must be where a character can
 * go, inside a string.
 */
export function tokenFitsJson(before: string, after: string, maxWhitespace = 32, maxNewlines = 1): boolean {
  if (after === before) return false;
  const partial = after.endsWith('\uFFFD');
  const settled = partial ? after.replace(/\uFFFD+$/, '') : after;
  const runs = whitespaceRuns(settled);
  if (!viableJsonObject(settled) || runs.longest > maxWhitespace || runs.mostNewlines > maxNewlines) return false;
  return !partial || viableJsonObject(`${settled}é`);
}

/**
 * What is wrong with a JSON-mode completion (null: nothing): its text must be one JSON object
 * when it stopped, and a viable beginning of one when it ran out of tokens ('length').
 */
export function jsonOutcomeProblem(text: string, finishReason: string | null | undefined): string | null {
  if (finishReason === 'stop') return isJsonObject(text) ? null : `stopped, but not one JSON object: ${JSON.stringify(text)}`;
  if (finishReason !== 'length') return `finish reason ${String(finishReason)}, expected stop or length`;
  return viableJsonObject(text) ? null : `ran out of tokens in text that is no beginning of a JSON object: ${JSON.stringify(text)}`;
}

/** Where the JSON object or array at the start of `s` (after whitespace) closes: the index after it; -1 where it does not start there or has not closed. */
export function valueEnd(s: string): number {
  let i = s.length - s.trimStart().length;
  if (s[i] !== '{' && s[i] !== '[') return -1;
  let depth = 0;
  let inString = false;
  for (; i < s.length; i++) {
    const c = s[i];
    if (inString) {
      if (c === '\\') i++;
      else if (c === '"') inString = false;
    } else if (c === '"') inString = true;
    else if (c === '{' || c === '[') depth++;
    else if ((c === '}' || c === ']') && --depth === 0) return i + 1;
  }
  return -1;
}
