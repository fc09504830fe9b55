/**
 * JSON's lexical rules, as UTF-16 code units: its character classes, and the small state machines
 * of a string's escapes and of a number, which json-prefix.ts and schema-prefix.ts both step.
 */
export const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
export const isHex = (c: number): boolean => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
/** JSON's four whitespace characters */
export const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
/** a character a string takes as it is: not a quote, a backslash or a control character */
export const isPlain = (c: number): boolean => c >= 0x20 && c !== 0x22 && c !== 0x5c;

/** escape state inside a string: 0 none, 1 after a backslash, 2–5 inside \u with n − 2 hex digits read */
export type Escape = number;

/** the escape state after c in a string; -1 where c cannot come */
export function nextEscape(esc: Escape, c: number): Escape {
  if (esc === 0) return c === 0x5c ? 1 : c >= 0x20 ? 0 : -1;
  if (esc === 1) {
    if (c === 0x75) return 2;
    return c === 0x22 || c === 0x5c || c === 0x2f || c === 0x62 || c === 0x66 || c === 0x6e || c === 0x72 || c === 0x74 ? 0 : -1;
  }
  if (!isHex(c)) return -1;
  return esc === 5 ? 0 : esc + 1;
}

/**
 * A number's phase after c (0: c does not continue it): 0 before it, 1 after '-', 2 a leading 0,
 * 3 digits, 4 after '.', 5 fraction digits, 6 after 'e', 7 after the exponent's sign, 8 exponent
 * digits. An integer takes no fraction or exponent.
 */
export function numberStep(phase: number, c: number, integer: boolean): number {
  switch (phase) {
    case 0: // before the number
      return c === 0x2d ? 1 : c === 0x30 ? 2 : isDigit(c) ? 3 : 0;
    case 1:
      return c === 0x30 ? 2 : isDigit(c) ? 3 : 0;
    case 2:
    case 3:
      if (phase === 3 && isDigit(c)) return 3;
      if (integer) return 0;
      return c === 0x2e ? 4 : c === 0x65 || c === 0x45 ? 6 : 0;
    case 4:
      return isDigit(c) ? 5 : 0;
    case 5:
      return isDigit(c) ? 5 : c === 0x65 || c === 0x45 ? 6 : 0;
    case 6:
      return c === 0x2b || c === 0x2d ? 7 : isDigit(c) ? 8 : 0;
    case 7:
    case 8:
      return isDigit(c) ? 8 : 0;
    default:
      return 0;
  }
}

/** whether a number in this phase can end here */
export function numberComplete(phase: number, integer: boolean): boolean {
  return phase === 2 || phase === 3 || (!integer && (phase === 5 || phase === 8));
}
