/**
 * A request's structured-output fields, as the decoder's response format: OpenAI's
 * `response_format` (JSON mode, a JSON schema), vLLM's `structured_outputs` ({json, regex, choice,
 * json_object}: the form vLLM reads since 0.12) and the `guided_json`, `guided_regex` and
 * `guided_choice` fields it read before (clients still send them). One constraint per request:
 * two of them, or two kinds inside `structured_outputs`, are a 400 rather than one chosen
 * silently. Schemas and patterns are compiled here, so a bad one is a 400 naming its field before
 * any load.
 */
import type { GenerationParams } from '../runtime/generation/decoder.js';
import { choicePattern, compileRegex, RegexError } from '../runtime/generation/regex-prefix.js';
import { compiled } from './compiled-schema.js';
import { badRequest } from './errors.js';
import type { CompletionRequest } from './schemas.js';

type Fields = Pick<CompletionRequest, 'response_format' | 'guided_json' | 'guided_regex' | 'guided_choice' | 'structured_outputs'>;
type ResponseFormat = GenerationParams['responseFormat'];

/** The decoder's response format from a request's fields (undefined: free text); a 400 for a bad or doubled constraint. */
export function responseFormatOf(req: Fields): ResponseFormat {
  const given: Array<[field: string, format: () => ResponseFormat]> = [];
  const format = req.response_format;
  if (format && format.type !== 'text') {
    given.push([
      'response_format',
      (): ResponseFormat => {
        switch (format.type) {
          case 'json_schema':
            return { jsonSchema: compiled(format.json_schema.schema, 'response_format.json_schema.schema') };
          case 'json_object':
            return format.value === undefined ? 'json_object' : guidedJson(format.value, 'response_format.value', false);
          // TGI's grammars hold any top-level value, as guided_json does
          case 'json':
            return guidedJson(format.value, 'response_format.value', false);
          case 'regex':
            return regex(format.value, 'response_format.value');
        }
      },
    ]);
  }
  if (req.guided_json != null) given.push(['guided_json', () => guidedJson(req.guided_json!, 'guided_json', false)]);
  if (req.guided_regex != null) given.push(['guided_regex', () => regex(req.guided_regex!, 'guided_regex')]);
  if (req.guided_choice != null) given.push(['guided_choice', () => choice(req.guided_choice!, 'guided_choice')]);
  const so = req.structured_outputs;
  if (so != null) {
    const kinds: Array<[string, () => ResponseFormat]> = [];
    const compact = so.disable_any_whitespace === true;
    if (so.json != null) kinds.push(['json', () => guidedJson(so.json!, 'structured_outputs.json', compact)]);
    if (so.regex != null) kinds.push(['regex', () => regex(so.regex!, 'structured_outputs.regex')]);
    if (so.choice != null) kinds.push(['choice', () => choice(so.choice!, 'structured_outputs.choice')]);
    if (so.json_object === true) kinds.push(['json_object', () => (compact ? { jsonSchema: { type: 'object' }, compact } : 'json_object')]);
    if (kinds.length !== 1) {
      throw badRequest(`structured_outputs must give exactly one of json, regex, choice and json_object${kinds.length > 1 ? `, not ${kinds.map(([k]) => k).join(' and ')}` : ''}`, 'structured_outputs', 'invalid_value');
    }
    given.push(['structured_outputs', kinds[0][1]]);
  }
  if (given.length > 1) throw badRequest(`give one structured-output constraint, not ${given.map(([f]) => f).join(' and ')}`, given[1][0], 'invalid_value');
  return given.length === 0 ? undefined : given[0][1]();
}

/** A JSON schema, or its JSON text: any top-level value, as vLLM holds it (OpenAI's response_format only an object) */
function guidedJson(schemaOrText: Record<string, unknown> | string, field: string, compact: boolean): ResponseFormat {
  let schema: unknown = schemaOrText;
  if (typeof schemaOrText === 'string') {
    try {
      schema = JSON.parse(schemaOrText);
    } catch (err) {
      throw badRequest(`${field}: not a JSON schema: ${(err as Error).message}`, field, 'invalid_value');
    }
  }
  return { jsonSchema: compiled(schema, field, 'any'), topLevel: 'any', ...(compact ? { compact } : {}) };
}

function regex(pattern: string, field: string): ResponseFormat {
  compiledPattern(pattern, field);
  return { regex: pattern };
}

function choice(choices: string[], field: string): ResponseFormat {
  compiledPattern(choicePattern(choices), field);
  return { choice: choices };
}

/** The pattern compiled (and kept), or a 400 naming `field`. */
function compiledPattern(pattern: string, field: string): void {
  try {
    compileRegex(pattern);
  } catch (err) {
    if (err instanceof RegexError) throw badRequest(`${field}: ${err.message}`, field, 'invalid_value');
    throw err;
  }
}
