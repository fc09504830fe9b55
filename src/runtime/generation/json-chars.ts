/** JSON's character classes, as UTF-16 code units (json-prefix.ts and schema-prefix.ts read text with them). */
export const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
export const isHex = (c: number): boolean => isDigit(c) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
/** JSON's four whitespace characters */
export const isSpace = (c: number): boolean => c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
/** a character a string takes as it is: not a quote, a backslash or a control character */
export const isPlain = (c: number): boolean => c >= 0x20 && c !== 0x22 && c !== 0x5c;
