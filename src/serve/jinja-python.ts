/**
 * Chat templates are written for Python's Jinja, which transformers renders them with; there,
 * `True|string` is "True", `{{ True }}` prints "True", `None|string` is "None" and a list's or
 * dict's `|string` is Python's repr ("['string', 'null']"). In @huggingface/jinja they are
 * "true", "true", an error ("Cannot apply filter string to type: NullValue") and JSON. Templates that write a call's arguments as text meet exactly these values:
 * Qwen3-Coder's writes each argument with `args_value | string`, so a conversation that carries
 * a call with a boolean argument got a prompt unlike transformers' ("true" where the model was
 * trained on "True"), and one with a null argument a 400; its tool list writes a parameter's
 * `type | string`, a list for a nullable one. The library has no hook for filters,
 * so this wraps its interpreter's string filter and its booleans' text once, after loading it;
 * tests hold the prompts to transformers' (test/serve/tool-calls.test.ts). Where the library's
 * internals are not as expected, nothing is changed.
 *
 * Not covered: `{{ None }}` prints nothing here and "None" there; `'x' ~ True` is "xtrue" here
 * (the library joins the values' own text); a float written with a zero fraction (2.0) is 2 once
 * the client's JSON is parsed, as in any JavaScript renderer.
 */

interface RuntimeValue {
  type: string;
  value: unknown;
}
interface JinjaRuntime {
  Environment?: new () => { set(name: string, value: unknown): RuntimeValue };
  Interpreter?: { prototype: Record<string, unknown> };
}

const patched = new WeakSet<object>();
/** values whose `|string` is Python's str() here (the library's own for the rest) */
const PYTHON_STR = new Set(['BooleanValue', 'NullValue', 'ArrayValue', 'TupleValue', 'ObjectValue']);

export function pythonStrings(jinja: JinjaRuntime): void {
  const { Environment, Interpreter } = jinja;
  if (Environment === undefined || Interpreter === undefined || patched.has(Interpreter)) return;
  const applyFilter = Interpreter.prototype.applyFilter;
  const sample = new Environment().set('b', true);
  if (typeof applyFilter !== 'function' || sample?.type !== 'BooleanValue') return;
  patched.add(Interpreter);
  Object.getPrototypeOf(sample).toString = function (this: RuntimeValue) {
    return pythonStr(this);
  };
  Interpreter.prototype.applyFilter = function (this: unknown, operand: RuntimeValue, filter: { type?: string; value?: unknown }, environment: unknown) {
    if (filter?.type === 'Identifier' && filter.value === 'string' && PYTHON_STR.has(operand?.type)) {
      // the library's own string of a boolean (a StringValue), given Python's text
      const out = (applyFilter as (...a: unknown[]) => RuntimeValue).call(this, sample, filter, environment);
      out.value = pythonStr(operand);
      return out;
    }
    return (applyFilter as (...a: unknown[]) => unknown).call(this, operand, filter, environment);
  };
}

/** Python's str() of a runtime value: repr() inside lists and dicts, the text itself for a string at the top. */
function pythonStr(v: RuntimeValue, nested = false): string {
  switch (v.type) {
    case 'BooleanValue':
      return v.value ? 'True' : 'False';
    case 'NullValue':
    case 'UndefinedValue':
      return 'None';
    case 'StringValue':
      return nested ? pythonStringRepr(v.value as string) : (v.value as string);
    case 'FloatValue': {
      const n = v.value as number;
      return Number.isInteger(n) ? `${n}.0` : String(n);
    }
    case 'ArrayValue':
      return `[${(v.value as RuntimeValue[]).map((x) => pythonStr(x, true)).join(', ')}]`;
    case 'TupleValue':
      return `(${(v.value as RuntimeValue[]).map((x) => pythonStr(x, true)).join(', ')})`;
    case 'ObjectValue':
      return `{${[...(v.value as Map<string, RuntimeValue>)].map(([k, x]) => `${pythonStringRepr(k)}: ${pythonStr(x, true)}`).join(', ')}}`;
    default:
      return String(v.value);
  }
}

/** Python's repr() of a string: single quotes unless it holds one and no double quote; controls escaped. */
function pythonStringRepr(s: string): string {
  const quote = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = quote;
  for (const ch of s) {
    const c = ch.codePointAt(0)!;
    if (ch === '\\' || ch === quote) out += `\\${ch}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || (c >= 0x7f && c < 0xa0)) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return out + quote;
}
