/**
 * A chat template in the form of Qwen3-Coder's (Qwen3-Coder-30B-A3B-Instruct): the tools listed
 * as XML, the assistant's calls written `<tool_call>\n<function=NAME>\n<parameter=KEY>\nVALUE\n
 * </parameter>\n</function>\n</tool_call>` from the arguments as a mapping (`|items`; a value that
 * is a mapping or a list as JSON, anything else as text), tool results in `<tool_response>`.
 * Written for the tests from the published template's structure; the jinja features it leans on
 * (`|items`, `is mapping`, `is sequence`, `loop.previtem`/`nextitem`) are the ones the real one uses.
 */
export const QWEN3_CODER_STYLE = [
  '{%- if messages[0]["role"] == "system" %}{%- set system_message = messages[0]["content"] %}{%- set loop_messages = messages[1:] %}',
  '{%- else %}{%- set loop_messages = messages %}{%- endif %}',
  '{%- if not tools is defined or tools is none %}{%- set tools = [] %}{%- endif %}',
  '{%- if system_message is defined %}{{- "<|im_start|>system\\n" + system_message }}',
  '{%- elif tools is iterable and tools | length > 0 %}{{- "<|im_start|>system\\nYou are Qwen, a helpful AI assistant that can interact with a computer to solve tasks." }}{%- endif %}',
  '{%- if tools is iterable and tools | length > 0 %}{{- "\\n\\n# Tools\\n\\nYou have access to the following functions:\\n\\n<tools>" }}',
  '{%- for tool in tools %}{%- if tool.function is defined %}{%- set tool = tool.function %}{%- endif %}',
  '{{- "\\n<function>\\n<name>" ~ tool.name ~ "</name>" }}',
  "{%- if tool.description is defined %}{{- '\\n<description>' ~ (tool.description | trim) ~ '</description>' }}{%- endif %}",
  "{{- '\\n<parameters>' }}",
  '{%- if tool.parameters is defined and tool.parameters is mapping and tool.parameters.properties is defined and tool.parameters.properties is mapping %}',
  "{%- for param_name, param_fields in tool.parameters.properties|items %}{{- '\\n<parameter>\\n<name>' ~ param_name ~ '</name>' }}",
  "{%- if param_fields.type is defined %}{{- '\\n<type>' ~ (param_fields.type | string) ~ '</type>' }}{%- endif %}",
  "{{- '\\n</parameter>' }}{%- endfor %}{%- endif %}",
  "{{- '\\n</parameters>\\n</function>' }}{%- endfor %}",
  '{{- "\\n</tools>" }}',
  "{{- '\\n\\nIf you choose to call a function ONLY reply in the following format with NO suffix:\\n\\n<tool_call>\\n<function=example_function_name>\\n<parameter=example_parameter_1>\\nvalue_1\\n</parameter>\\n</function>\\n</tool_call>' }}",
  '{%- endif %}',
  "{%- if system_message is defined or (tools is iterable and tools | length > 0) %}{{- '<|im_end|>\\n' }}{%- endif %}",
  '{%- for message in loop_messages %}',
  '{%- if message.role == "assistant" and message.tool_calls is defined and message.tool_calls is iterable and message.tool_calls | length > 0 %}',
  "{{- '<|im_start|>' + message.role }}",
  "{%- if message.content is defined and message.content is string and message.content | trim | length > 0 %}{{- '\\n' + message.content | trim + '\\n' }}{%- endif %}",
  '{%- for tool_call in message.tool_calls %}{%- if tool_call.function is defined %}{%- set tool_call = tool_call.function %}{%- endif %}',
  "{{- '\\n<tool_call>\\n<function=' + tool_call.name + '>\\n' }}",
  '{%- if tool_call.arguments is defined %}{%- for args_name, args_value in tool_call.arguments|items %}',
  "{{- '<parameter=' + args_name + '>\\n' }}",
  '{%- set args_value = args_value | tojson | safe if args_value is mapping or (args_value is sequence and args_value is not string) else args_value | string %}',
  "{{- args_value }}{{- '\\n</parameter>\\n' }}{%- endfor %}{%- endif %}",
  "{{- '</function>\\n</tool_call>' }}{%- endfor %}{{- '<|im_end|>\\n' }}",
  '{%- elif message.role == "user" or message.role == "system" or message.role == "assistant" %}',
  "{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>' + '\\n' }}",
  '{%- elif message.role == "tool" %}',
  "{%- if loop.previtem and loop.previtem.role != \"tool\" %}{{- '<|im_start|>user\\n' }}{%- endif %}",
  "{{- '<tool_response>\\n' }}{{- message.content }}{{- '\\n</tool_response>\\n' }}",
  "{%- if not loop.last and loop.nextitem.role != \"tool\" %}{{- '<|im_end|>\\n' }}{%- elif loop.last %}{{- '<|im_end|>\\n' }}{%- endif %}",
  '{%- endif %}{%- endfor %}',
  "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}",
].join('');
