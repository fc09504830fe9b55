/** Version written into every output this tool produces (kept in step with package.json). */
export const TOOL_VERSION = '0.1.0';
