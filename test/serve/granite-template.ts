/**
 * A chat template in the form of IBM Granite 3.x instruct models' (the Granite MoE ones
 * included): `<|start_of_role|>ROLE<|end_of_role|>…<|end_of_text|>` turns, the tools as indented
 * JSON in an `available_tools` turn, an assistant's calls written `<|tool_call|>` and a JSON list
 * of {"name", "arguments"}, tool results in `tool_response` turns. Written for the tests from the
 * published templates' structure; the jinja it leans on (`tojson(indent=4)`, `loop.last`) is the
 * real ones'.
 */
export const GRANITE_STYLE = [
  '{%- if tools %}',
  "{{- '<|start_of_role|>available_tools<|end_of_role|>\\n' }}",
  "{%- for tool in tools %}{{- tool | tojson(indent=4) }}{%- if not loop.last %}{{- '\\n\\n' }}{%- endif %}{%- endfor %}",
  "{{- '<|end_of_text|>\\n' }}",
  '{%- endif %}',
  '{%- for message in messages %}',
  "{%- if message.role == 'assistant' and message.tool_calls %}",
  "{{- '<|start_of_role|>assistant<|end_of_role|><|tool_call|>[' }}",
  "{%- for call in message.tool_calls %}{{- {'name': call.function.name, 'arguments': call.function.arguments} | tojson }}{%- if not loop.last %}{{- ', ' }}{%- endif %}{%- endfor %}",
  "{{- ']<|end_of_text|>\\n' }}",
  "{%- elif message.role == 'tool' %}",
  "{{- '<|start_of_role|>tool_response<|end_of_role|>' + message.content + '<|end_of_text|>\\n' }}",
  '{%- else %}',
  "{{- '<|start_of_role|>' + message.role + '<|end_of_role|>' + message.content + '<|end_of_text|>\\n' }}",
  '{%- endif %}',
  '{%- endfor %}',
  "{%- if add_generation_prompt %}{{- '<|start_of_role|>assistant<|end_of_role|>' }}{%- endif %}",
].join('');
