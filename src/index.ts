export { TOOL_VERSION } from './version.js';
