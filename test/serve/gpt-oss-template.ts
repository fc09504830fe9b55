/**
 * A chat template in the form of gpt-oss's, written for the tests from the published template's
 * structure and conventions:
 * - A system message built from template variables: the model's identity, a knowledge cutoff,
 *   today's date (`strftime_now`), `Reasoning: {reasoning_effort}` (default medium), the valid
 *   channels and, with tools, where calls go.
 * - A developer message: the request's system (or developer) message under `# Instructions`, and
 *   the tools as a TypeScript `namespace functions` (a comment and a type per function, its
 *   parameters typed, `?` where optional, defaults in comments).
 * - Messages as harmony writes them. The assistant's reasoning is read from `thinking`, and
 *   `in` tests its text and content for channel markers, which it refuses. A turn of calls writes
 *   its analysis (from `content` or `thinking`, never both) unless a later final answer exists,
 *   then its first call `to=functions.NAME` on the commentary channel, the arguments `| tojson`.
 *   A tool's result goes `functions.NAME to=assistant`, the text `| tojson`, NAME being the last
 *   call's (kept in a namespace across the loop). Final answers are written on the final channel
 *   without their reasoning.
 * - The generation prompt `<|start|>assistant`: the model writes the channel itself.
 */
export const GPT_OSS_STYLE = `{#- the TypeScript type of a JSON-schema parameter -#}
{%- macro ts_type(spec) -%}
    {%- if spec.type is defined and spec.type is iterable and spec.type is not string -%}
        {{- spec.type | join(' | ') -}}
    {%- elif spec.type == 'string' and spec.enum -%}
        {{- '"' + spec.enum | join('" | "') + '"' -}}
    {%- elif spec.type == 'string' -%}
        {{- 'string' -}}
    {%- elif spec.type == 'number' or spec.type == 'integer' -%}
        {{- 'number' -}}
    {%- elif spec.type == 'boolean' -%}
        {{- 'boolean' -}}
    {%- elif spec.type == 'array' and spec['items'] -%}
        {{- ts_type(spec['items']) + '[]' -}}
    {%- elif spec.type == 'array' -%}
        {{- 'any[]' -}}
    {%- elif spec.type == 'object' -%}
        {{- 'object' -}}
    {%- else -%}
        {{- 'any' -}}
    {%- endif -%}
    {%- if spec.nullable -%}{{- ' | null' -}}{%- endif -%}
{%- endmacro -%}
{%- macro functions_namespace(tools) -%}
    {{- '## functions\\n\\nnamespace functions {\\n\\n' -}}
    {%- for tool in tools -%}
        {%- set fn = tool.function -%}
        {%- if fn.description -%}{{- '// ' + fn.description + '\\n' -}}{%- endif -%}
        {{- 'type ' + fn.name + ' = ' -}}
        {%- if fn.parameters and fn.parameters.properties -%}
            {{- '(_: {\\n' -}}
            {%- for name, spec in fn.parameters.properties.items() -%}
                {%- if spec.description -%}{{- '// ' + spec.description + '\\n' -}}{%- endif -%}
                {{- name -}}
                {%- if name not in (fn.parameters.required or []) -%}{{- '?' -}}{%- endif -%}
                {{- ': ' + ts_type(spec) -}}
                {%- if spec.default is defined -%}{{- ', // default: ' + spec.default | tojson -}}{%- endif -%}
                {{- ',\\n' -}}
            {%- endfor -%}
            {{- '}) => any;\\n\\n' -}}
        {%- else -%}
            {{- '() => any;\\n\\n' -}}
        {%- endif -%}
    {%- endfor -%}
    {{- '} // namespace functions' -}}
{%- endmacro -%}
{{- '<|start|>system<|message|>' -}}
{%- if model_identity is not defined -%}{%- set model_identity = 'You are a large language model.' -%}{%- endif -%}
{{- model_identity + '\\nKnowledge cutoff: 2024-06\\nCurrent date: ' + strftime_now('%Y-%m-%d') + '\\n\\n' -}}
{%- if reasoning_effort is not defined -%}{%- set reasoning_effort = 'medium' -%}{%- endif -%}
{{- 'Reasoning: ' + reasoning_effort + '\\n\\n# Valid channels: analysis, commentary, final. Channel must be included for every message.' -}}
{%- if tools -%}{{- "\\nCalls to these tools must go to the commentary channel: 'functions'." -}}{%- endif -%}
{{- '<|end|>' -}}
{%- if messages[0].role == 'system' or messages[0].role == 'developer' -%}
    {%- set instructions = messages[0].content -%}
    {%- set rest = messages[1:] -%}
{%- else -%}
    {%- set instructions = '' -%}
    {%- set rest = messages -%}
{%- endif -%}
{%- if instructions or tools -%}
    {{- '<|start|>developer<|message|>' -}}
    {%- if instructions -%}{{- '# Instructions\\n\\n' + instructions -}}{%- endif -%}
    {%- if tools -%}{{- '\\n\\n# Tools\\n\\n' + functions_namespace(tools) -}}{%- endif -%}
    {{- '<|end|>' -}}
{%- endif -%}
{%- set last_call = namespace(name=none) -%}
{%- for message in rest -%}
    {%- if message.role == 'assistant' -%}
        {%- if 'content' in message and ('<|channel|>' in message.content or '<|message|>' in message.content) -%}
            {{- raise_exception('an assistant content holds harmony markers; give the analysis as thinking and the answer as content') -}}
        {%- endif -%}
        {%- if 'thinking' in message and '<|channel|>' in message.thinking -%}
            {{- raise_exception('an assistant thinking holds harmony markers') -}}
        {%- endif -%}
        {%- if 'tool_calls' in message -%}
            {%- set later = namespace(final=false) -%}
            {%- for after in rest[loop.index:] -%}
                {%- if after.role == 'assistant' and 'tool_calls' not in after -%}{%- set later.final = true -%}{%- endif -%}
            {%- endfor -%}
            {%- if message.content and message.thinking -%}
                {{- raise_exception('a turn of calls takes its analysis as content or as thinking, not both') -}}
            {%- elif not later.final and (message.content or message.thinking) -%}
                {{- '<|start|>assistant<|channel|>analysis<|message|>' + (message.content or message.thinking) + '<|end|>' -}}
            {%- endif -%}
            {%- set call = message.tool_calls[0] -%}
            {%- if call.function -%}{%- set call = call.function -%}{%- endif -%}
            {{- '<|start|>assistant to=functions.' + call.name + '<|channel|>commentary json<|message|>' + call.arguments | tojson + '<|call|>' -}}
            {%- set last_call.name = call.name -%}
        {%- elif loop.last and not add_generation_prompt -%}
            {%- if 'thinking' in message -%}{{- '<|start|>assistant<|channel|>analysis<|message|>' + message.thinking + '<|end|>' -}}{%- endif -%}
            {{- '<|start|>assistant<|channel|>final<|message|>' + message.content + '<|return|>' -}}
        {%- else -%}
            {{- '<|start|>assistant<|channel|>final<|message|>' + message.content + '<|end|>' -}}
            {%- set last_call.name = none -%}
        {%- endif -%}
    {%- elif message.role == 'tool' -%}
        {%- if last_call.name is none -%}{{- raise_exception('a tool message with no call before it') -}}{%- endif -%}
        {{- '<|start|>functions.' + last_call.name + ' to=assistant<|channel|>commentary<|message|>' + message.content | tojson + '<|end|>' -}}
    {%- elif message.role == 'user' -%}
        {{- '<|start|>user<|message|>' + message.content + '<|end|>' -}}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{- '<|start|>assistant' -}}{%- endif -%}`;
