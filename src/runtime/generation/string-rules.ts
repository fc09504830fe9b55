/**
 * What a JSON schema may ask of a string value beyond its type: `pattern`, `format`, `minLength`
 * and `maxLength` (json-schema.ts compiles them here; schema-prefix.ts holds a string to them as
 * it is written, on the decoded value: escapes read, lengths in code points).
 *
 * `pattern` is JSON Schema's: an ECMA-262 regular expression that must match somewhere in the
 * value (not the whole of it, unless anchored with `^` and `$`). It is turned into a whole-value
 * match for the automaton (regex-prefix.ts): each top-level alternative gets `[\s\S]*` at the end
 * it does not anchor. Lookaheads are followed, as in the regex mode (the `[\s\S]*` after them is part
 * of the remainder they look at); anchors elsewhere, lookbehinds and `\b` are refused.
 *
 * The rules are held together: a pattern and a format become one automaton (their intersection),
 * and a character is taken only where the automaton can still reach a match within the lengths
 * left (CompiledRegex.completes), so a held string never reaches a point no value continues;
 * rules that no value meets at all are a SchemaError before anything is generated.
 *
 * `format`: the formats Pydantic, zod and OpenAI's strict mode write (`date-time`, `date`, `time`,
 * `duration`, `uuid`, `email`, `ipv4`, `ipv6`, `hostname`, `uri`, `base64`, and Pydantic's own
 * `ipvanyaddress`, `ipv4interface`, `ipv6network`, … for its network types) are held to a regular
 * expression of a subset of their values that every common validator accepts, Pydantic's parse
 * included: RFC 3339's dates and times with upper-case `T` and `Z`, years 0001–9999, real
 * calendar days (leap years included) and fractions of a second to the microsecond (Python's
 * datetime, which Pydantic parses into); ISO 8601 durations in days, hours, minutes and whole
 * seconds; a UUID in its 8-4-4-4-12 hex form; an e-mail address of letters, digits, `_`, `+` and
 * `-` in dot-separated atoms under a domain of letters, digits and hyphens ending in a
 * letters-only top-level label; IPv6 in its full eight groups; networks whose host bits are zero
 * as Python's `ip_network` requires (whole octets or groups cleared); `http`/`https` URIs; padded
 * base64. A model may write nothing outside that subset, and everything it writes passes the
 * format. Other formats (`binary`, `password`, `path`, …) only annotate, as JSON Schema has it by
 * default, and are not held: any string is one of them.
 */
import { anchorsOf, compileRegex, intersectRegexes, RegexError, type CompiledRegex, type DfaState } from './regex-prefix.js';
import { SchemaError } from './json-schema.js';

/** A string's rules beyond its type, as schema-prefix.ts follows them. */
export interface StringRule {
  /** the value must match each of these whole (the pattern, made a whole-value match; the format's) */
  regexes: readonly CompiledRegex[];
  /** length of the value in code points */
  min: number;
  max: number;
}

/** years 0001–9999 (Python's datetime, and so Pydantic, has no year 0) */
const YEAR = '(?:[1-9]\\d{3}|0[1-9]\\d{2}|00[1-9]\\d|000[1-9])';
/** a calendar date, February 29 only in leap years (divisible by 4, and by 400 where by 100) */
const DATE = [
  `${YEAR}-(?:0[13578]|1[02])-(?:0[1-9]|[12]\\d|3[01])`,
  `${YEAR}-(?:0[469]|11)-(?:0[1-9]|[12]\\d|30)`,
  `${YEAR}-02-(?:0[1-9]|1\\d|2[0-8])`,
  `(?:\\d{2}(?:0[48]|[2468][048]|[13579][26])|(?:0[48]|[2468][048]|[13579][26])00)-02-29`,
].join('|');
/** fractions of a second to the microsecond, the most Python's datetime keeps */
const TIME = `(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.\\d{1,6})?(?:Z|[+-](?:[01]\\d|2[0-3]):[0-5]\\d)`;
const HEX = '[0-9a-fA-F]';
const LABEL = '[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?';
/** the characters of an address's local part that every validator takes (zod's is the narrowest) */
const ATOM = '[A-Za-z0-9_+-]{1,15}';
const IPV4_PART = '(?:25[0-5]|2[0-4]\\d|1\\d\\d|[1-9]?\\d)';
const IPV4 = `${IPV4_PART}(?:\\.${IPV4_PART}){3}`;
const IPV6 = `${HEX}{1,4}(?::${HEX}{1,4}){7}`;
/** an address with a prefix length or none (Python's ip_interface: any host bits) */
const IPV4_INTERFACE = `${IPV4}(?:/(?:3[0-2]|[12]?\\d))?`;
const IPV6_INTERFACE = `${IPV6}(?:/(?:12[0-8]|1[01]\\d|[1-9]?\\d))?`;
/**
 * a network as Python's ip_network takes it, whose host bits must be zero: a whole address (/32,
 * /128, or no prefix), or whole octets or groups cleared under the prefixes that clear them
 */
const IPV4_NETWORK = `${IPV4}(?:/32)?|(?:${IPV4_PART}\\.){3}0/24|(?:${IPV4_PART}\\.){2}0\\.0/16|${IPV4_PART}\\.0\\.0\\.0/8|0\\.0\\.0\\.0/0`;
const IPV6_NETWORK = `${IPV6}(?:/128)?|${HEX}{1,4}(?::${HEX}{1,4}){3}(?::0{1,4}){4}/64|${HEX}{1,4}(?::${HEX}{1,4}){2}(?::0{1,4}){5}/48`;
/** ISO 8601's durations in days, hours, minutes and whole seconds, each part given at most once and in order */
const CLOCK = '(?:\\d{1,2}H(?:\\d{1,2}M)?(?:\\d{1,2}S)?|\\d{1,2}M(?:\\d{1,2}S)?|\\d{1,2}S)';
const DURATION = `P(?:\\d{1,4}D(?:T${CLOCK})?|T${CLOCK})`;
const BASE64 = '(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?';

/** The formats held, each as the whole-value pattern of its subset. */
export const FORMAT_PATTERNS: ReadonlyMap<string, string> = new Map([
  ['date-time', `(?:${DATE})T${TIME}`],
  ['date', `(?:${DATE})`],
  ['time', TIME],
  ['uuid', `${HEX}{8}-${HEX}{4}-${HEX}{4}-${HEX}{4}-${HEX}{12}`],
  ['email', `${ATOM}(?:\\.${ATOM}){0,3}@(?:${LABEL}\\.){1,4}[A-Za-z]{2,24}`],
  ['ipv4', IPV4],
  ['ipv6', IPV6],
  // Pydantic's own network formats (IPvAnyAddress, IPv4Network, …), which its parse needs to be values of
  ['ipvanyaddress', `${IPV4}|${IPV6}`],
  ['ipv4interface', IPV4_INTERFACE],
  ['ipv6interface', IPV6_INTERFACE],
  ['ipvanyinterface', `${IPV4_INTERFACE}|${IPV6_INTERFACE}`],
  ['ipv4network', IPV4_NETWORK],
  ['ipv6network', IPV6_NETWORK],
  ['ipvanynetwork', `${IPV4_NETWORK}|${IPV6_NETWORK}`],
  // Pydantic's timedelta
  ['duration', DURATION],
  // Pydantic's Base64Bytes and Base64Str
  ['base64', BASE64],
  // at most four labels of up to 63 characters: within the 253 a name may have
  ['hostname', `${LABEL}(?:\\.${LABEL}){0,3}`],
  // (a % only as a percent-encoding, % and two hex digits, as RFC 3986 has it: Ajv refuses a bare one)
  ['uri', `https?://(?:${LABEL}\\.){0,4}${LABEL}(?::\\d{1,5})?(?:/(?:[A-Za-z0-9._~!$&'()*+,;=:@-]|%${HEX}{2})*)*(?:\\?(?:[A-Za-z0-9._~!$&'()*+,;=:@/?-]|%${HEX}{2})*)?`],
]);

/** The rules of a string schema `o` (at `at`); null where it has none beyond its type. */
export function stringRule(o: Record<string, unknown>, at: string): StringRule | null {
  const held: { regex: CompiledRegex; what: string }[] = [];
  if (o.pattern !== undefined) {
    if (typeof o.pattern !== 'string') throw new SchemaError('"pattern" must be a string', at);
    const what = `the pattern ${JSON.stringify(o.pattern)}`;
    held.push({ regex: compiled(searchSource(o.pattern, at), `${at}/pattern`, what), what });
  }
  if (typeof o.format === 'string' && FORMAT_PATTERNS.has(o.format)) {
    const what = `the format "${o.format}"`;
    held.push({ regex: compiled(FORMAT_PATTERNS.get(o.format)!, `${at}/format`, what), what });
  }
  const min = o.minLength ?? 0;
  const max = o.maxLength ?? Infinity;
  if (!Number.isSafeInteger(min) || (min as number) < 0) throw new SchemaError('"minLength" must be an integer ≥ 0', at);
  if (max !== Infinity && (!Number.isSafeInteger(max) || (max as number) < (min as number))) throw new SchemaError('"maxLength" must be an integer ≥ minLength', at);
  if (held.length === 0 && min === 0 && max === Infinity) return null;
  if (held.length === 2) {
    const joint = intersectRegexes(held[0].regex, held[1].regex);
    if (joint?.empty === true) throw new SchemaError(`no string meets both ${held[0].what} and ${held[1].what}`, at);
    if (joint !== null) held.splice(0, 2, { regex: joint, what: `${held[0].what} with ${held[1].what}` });
  }
  // refused here, not when the generation reaches a point no token continues
  for (const { regex, what } of held) {
    if (!regex.completes(regex.start, min as number, max as number)) throw new SchemaError(`no string of ${lengths(min as number, max as number)} meets ${what}`, at);
  }
  return { regexes: held.map((h) => h.regex), min: min as number, max: max as number };
}

/** a length window in words: "at least 3 characters", "3 to 5 characters" */
function lengths(min: number, max: number): string {
  const chars = (n: number) => `${n} character${n === 1 ? '' : 's'}`;
  if (max === Infinity) return `at least ${chars(min)}`;
  if (min === 0) return `at most ${chars(max)}`;
  return min === max ? `exactly ${chars(min)}` : `${min} to ${chars(max)}`;
}

function compiled(source: string, at: string, what: string): CompiledRegex {
  try {
    return compileRegex(source);
  } catch (err) {
    if (err instanceof RegexError) throw new SchemaError(`${what} cannot be held: ${err.message}`, at);
    throw err;
  }
}

/**
 * A whole-value pattern that matches what `pattern` finds somewhere in a value: each top-level
 * alternative anchored where it says (`^`, `$`) and open (`[\s\S]*`) where it does not.
 */
export function searchSource(pattern: string, at = ''): string {
  return topLevelAlternatives(pattern, at)
    .map((alt) => {
      const { start, end, core } = anchorsOf(alt);
      return `${start ? '' : '[\\s\\S]*'}(?:${core})${end ? '' : '[\\s\\S]*'}`;
    })
    .join('|');
}

/** `pattern` split at its top-level `|` (outside groups and classes). */
function topLevelAlternatives(pattern: string, at: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let inClass = false;
  let from = 0;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      i++;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      continue;
    }
    if (c === '[') inClass = true;
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth === 0) {
      out.push(pattern.slice(from, i));
      from = i + 1;
    }
    if (depth < 0) throw new SchemaError(`the pattern ${JSON.stringify(pattern)} has an unmatched ")"`, `${at}/pattern`);
  }
  out.push(pattern.slice(from));
  return out;
}

/** Whether a whole value meets the rule (a property name checked against propertyNames before anything is generated). */
export function ruleAccepts(rule: StringRule, value: string): boolean {
  const points = [...value];
  if (points.length < rule.min || points.length > rule.max) return false;
  return rule.regexes.every((r) => {
    let state: ReturnType<CompiledRegex['stepCodePoint']> = r.start;
    for (const p of points) {
      state = r.stepCodePoint(state, p.codePointAt(0)!);
      if (state === null) return false;
    }
    return state.accepting;
  });
}

/**
 * The characters tried where a string held to a rule must find a value other than some given
 * ones (an object's key outside names already given, an item of unique items outside the items
 * given): printable ASCII but the quote and backslash (written as themselves), and a few beyond.
 * A value of other characters only is not looked for, so such a search may miss one and refuse
 * text that could have gone on; it never takes text that cannot.
 */
export const PROBE_CHARACTERS: readonly string[] = [...Array.from({ length: 0x5f }, (_, i) => String.fromCharCode(0x20 + i)).filter((ch) => ch !== '"' && ch !== '\\'), 'é', 'ü', 'ß', 'я', '中'];

/** most lengths, states of one length, and steps in all, distinctValues follows */
const MAX_COUNT_LENGTH = 4096;
const MAX_COUNT_STATES = 4096;
const MAX_COUNT_STEPS = 400_000;

/**
 * How many distinct values of PROBE_CHARACTERS the rule takes, counted up to `enough`: what an
 * array of unique items held to it needs at least `minItems` of. The values are counted length by
 * length; each regex is deterministic, so the values that reach a state are counted once each by
 * carrying their number with it. `complete` is false where the count stopped at a limit
 * (MAX_COUNT_LENGTH characters, MAX_COUNT_STATES states of one length, MAX_COUNT_STEPS steps)
 * before it reached `enough`: the rule may take more values than `found`.
 */
export function distinctValues(rule: StringRule, enough: number): { found: number; complete: boolean } {
  type At = { dfas: DfaState[]; n: number };
  let layer = new Map<string, At>([['', { dfas: rule.regexes.map((r) => r.start), n: 1 }]]);
  let found = 0;
  let steps = 0;
  let complete = true;
  for (let len = 0; layer.size > 0; len++) {
    if (len >= rule.min) for (const at of layer.values()) if (at.dfas.every((d) => d.accepting)) found += at.n;
    if (found >= enough) return { found: enough, complete: true };
    if (len === rule.max) break;
    if (len === MAX_COUNT_LENGTH || steps > MAX_COUNT_STEPS) {
      complete = false;
      break;
    }
    const next = new Map<string, At>();
    for (const at of layer.values()) {
      for (const ch of PROBE_CHARACTERS) {
        const dfas: DfaState[] = [];
        for (const [i, r] of rule.regexes.entries()) {
          steps++;
          const d = r.stepCodePoint(at.dfas[i], ch.codePointAt(0)!);
          if (d === null || !r.completes(d, rule.min - len - 1, rule.max - len - 1)) break;
          dfas.push(d);
        }
        if (dfas.length < rule.regexes.length) continue;
        const key = dfas.map((d) => d.key).join(',');
        const known = next.get(key);
        if (known !== undefined) known.n = Math.min(known.n + at.n, enough);
        else if (next.size < MAX_COUNT_STATES) next.set(key, { dfas, n: at.n });
        else complete = false;
      }
    }
    layer = next;
  }
  return { found, complete };
}
