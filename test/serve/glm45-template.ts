/**
 * A chat template in the form of GLM-4.5's (GLM-4.5, GLM-4.5-Air, GLM-4.6): `[gMASK]<sop>`, the
 * tools as JSON lines in the system turn, `<|user|>` / `<|assistant|>` / `<|observation|>` turns,
 * an empty `<think></think>` before an assistant turn whose reasoning is not carried, and each call
 * written `<tool_call>NAME\n<arg_key>K</arg_key>\n<arg_value>V</arg_value>\n</tool_call>` from the
 * arguments as a mapping (`.items()`; a string value as its text, anything else `| tojson`).
 * Written for the tests from the published template's structure, with its line breaks between
 * block tags, which transformers' trim_blocks and lstrip_blocks remove, and the jinja it leans on
 * (a macro, a namespace, `.items()`, `.split`, `|first`, `|last`, `rstrip`, `is mapping`).
 */
export const GLM45_STYLE = `[gMASK]<sop>
{%- if tools -%}
<|system|>
# Tools

You may call functions; their signatures are within <tools></tools>:
<tools>
{% for tool in tools %}
{{ tool | tojson(ensure_ascii=False) }}
{% endfor %}
</tools>

Write each call as:
<tool_call>{function-name}
<arg_key>{arg-key-1}</arg_key>
<arg_value>{arg-value-1}</arg_value>
...
</tool_call>{%- endif -%}
{%- macro text_of(content) -%}
    {%- if content is string -%}
        {{- content }}
    {%- elif content is iterable and content is not mapping -%}
        {%- for part in content -%}
            {%- if part is mapping and part.type == 'text' -%}{{- part.text }}{%- elif part is string -%}{{- part }}{%- endif -%}
        {%- endfor -%}
    {%- else -%}
        {{- content }}
    {%- endif -%}
{%- endmacro -%}
{%- set ns = namespace(last_user=-1) %}
{%- for m in messages %}
    {%- if m.role == 'user' %}
        {% set ns.last_user = loop.index0 -%}
    {%- endif %}
{%- endfor %}
{% for m in messages %}
{%- if m.role == 'user' -%}<|user|>
{{ text_of(m.content) }}
{%- elif m.role == 'assistant' -%}
<|assistant|>
{%- set reasoning = '' %}
{%- set content = text_of(m.content) %}
{%- if m.reasoning_content is string %}
    {%- set reasoning = m.reasoning_content %}
{%- elif '</think>' in content %}
    {%- set reasoning = ((content.split('</think>')|first).rstrip('\\n').split('<think>')|last).lstrip('\\n') %}
    {%- set content = (content.split('</think>')|last).lstrip('\\n') %}
{%- endif %}
{%- if loop.index0 > ns.last_user and reasoning -%}
{{ '\\n<think>' + reasoning.strip() + '</think>' }}
{%- else -%}
{{ '\\n<think></think>' }}
{%- endif -%}
{%- if content.strip() -%}
{{ '\\n' + content.strip() }}
{%- endif -%}
{% if m.tool_calls %}
{% for tc in m.tool_calls %}
{%- if tc.function %}
    {%- set tc = tc.function %}
{%- endif %}
{{ '\\n<tool_call>' + tc.name }}
{% set args = tc.arguments %}
{% for k, v in args.items() %}
<arg_key>{{ k }}</arg_key>
<arg_value>{{ v | tojson(ensure_ascii=False) if v is not string else v }}</arg_value>
{% endfor %}
</tool_call>{% endfor %}
{% endif %}
{%- elif m.role == 'tool' -%}
{%- if loop.first or (messages[loop.index0 - 1].role != 'tool') %}
    {{- '<|observation|>' }}
{%- endif %}
{{- '\\n<tool_response>\\n' }}
{{- m.content }}
{{- '\\n</tool_response>' }}
{%- elif m.role == 'system' -%}
<|system|>
{{ text_of(m.content) }}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}
    <|assistant|>{{- '\\n<think></think>' if (enable_thinking is defined and not enable_thinking) else '' -}}
{%- endif -%}`;
