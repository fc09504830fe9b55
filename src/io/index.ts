export * from './errors.js';
export * from './dtype.js';
export * from './atomic.js';
export { parseStrictJson, JsonNumber, JsonSyntaxError, type JsonValue, type JsonObject } from './header-json.js';
export * from './safetensors-reader.js';
export * from './safetensors-writer.js';
export * from './sharded.js';
