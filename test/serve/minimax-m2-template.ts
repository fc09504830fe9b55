/**
 * A chat template in the form of MiniMax-M2's (M2, M2.1): `]~!b[]~b]system` opens the system turn,
 * which lists the tools as `<tool>{json}</tool>` lines inside `<tools>`; `]~b]user`, `]~b]ai` and
 * `]~b]tool` open the other turns and `[e~[` closes each; an assistant turn after the last question
 * carries its reasoning back in `<think>`; calls are written
 * `<minimax:tool_call>\n<invoke name="NAME">\n<parameter name="K">V</parameter>\n…</invoke>\n</minimax:tool_call>`
 * from the arguments as a mapping (`.items()`; a string value as its text, anything else
 * `| tojson`), several invokes in one block; the generation prompt opens `<think>\n`. Written for
 * the tests from the published template's structure, with line breaks between block tags that
 * transformers' trim_blocks and lstrip_blocks remove.
 */
export const MINIMAX_M2_STYLE = `{%- set call_open = '<minimax:tool_call>' -%}
{%- set call_close = '</minimax:tool_call>' -%}
{%- macro text_of(content) -%}
    {%- if content is string -%}{{ content }}
    {%- elif content is iterable and content is not mapping -%}
        {%- for part in content -%}
            {%- if part is mapping and part.type == 'text' -%}{{- part.text }}{%- elif part is string -%}{{- part }}{%- endif -%}
        {%- endfor -%}
    {%- else -%}{{- content }}
    {%- endif -%}
{%- endmacro -%}
{%- set rest = messages -%}
{%- set system = none -%}
{%- if messages and messages[0].role == 'system' -%}
    {%- set system = messages[0] -%}
    {%- set rest = messages[1:] -%}
{%- endif -%}
{%- set ns = namespace(last_user=-1) %}
{% for m in rest %}
    {%- if m.role == 'user' %}
        {% set ns.last_user = loop.index0 -%}
    {%- endif %}
{%- endfor %}
{{- ']~!b[' ~ ']~b]system' ~ '\\n' }}
{{- text_of(system.content) if system else 'You are a helpful assistant.' }}
{%- if tools -%}
    {{- '\\n\\n# Tools\\nHere are the tools, as JSON schemas:\\n\\n<tools>\\n' }}
    {%- for tool in tools -%}
<tool>{{ tool.function | tojson(ensure_ascii=False) }}</tool>
{% endfor -%}
    {{- '</tools>\\n\\nCall them in XML:\\n\\n' ~ call_open }}
<invoke name="tool-name">
<parameter name="key">value</parameter>
</invoke>
{{- '\\n' ~ call_close }}
{%- endif -%}
{{- '[e~[\\n' }}
{%- for m in rest -%}
    {%- if m.role == 'assistant' -%}
        {{- ']~b]ai' ~ '\\n' }}
        {%- set content = text_of(m.content) %}
        {%- set reasoning = m.reasoning_content if m.reasoning_content is string else '' %}
        {%- if reasoning and loop.index0 > ns.last_user -%}
            {{- '<think>\\n' ~ reasoning ~ '\\n</think>\\n\\n' }}
        {%- endif -%}
        {%- if content -%}{{- content }}{%- endif -%}
        {%- if m.tool_calls -%}
            {{- '\\n' ~ call_open ~ '\\n' }}
            {%- for tc in m.tool_calls -%}
                {%- if tc.function %}
                    {%- set tc = tc.function %}
                {%- endif %}
                {{- '<invoke name="' + tc.name + '">' }}
                {% set args = tc.arguments %}
                {%- for k, v in args.items() %}
                {{- '<parameter name="' + k + '">' }}
                {{- v | tojson(ensure_ascii=False) if v is not string else v }}
                {{- '</parameter>' }}
                {% endfor %}
                {{- '</invoke>' ~ '\\n' }}
            {%- endfor -%}
            {{- call_close }}
        {%- endif -%}
        {{- '[e~[\\n' }}
    {%- elif m.role == 'tool' -%}
        {%- if loop.first or rest[loop.index0 - 1].role != 'tool' -%}{{- ']~b]tool' }}{%- endif -%}
        {{- '\\n<response>' ~ text_of(m.content) ~ '</response>' }}
        {%- if loop.last or rest[loop.index0 + 1].role != 'tool' -%}{{- '[e~[\\n' }}{%- endif -%}
    {%- elif m.role == 'user' -%}
        {{- ']~b]user' ~ '\\n' ~ text_of(m.content) ~ '[e~[\\n' }}
    {%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    {{- ']~b]ai' ~ '\\n' ~ '<think>' ~ '\\n' }}
{%- endif -%}`;
