"""Makes the chat-template reference renders Turbine's ChatTemplates tests compare against, with Hugging Face
`transformers` (`apply_chat_template`, i.e. jinja2 with trim_blocks and lstrip_blocks). Runs on the GPU machine,
where transformers is installed (nothing here needs the GPU itself).

    python3 tools/reference/make_chat_references.py --inputs DIR --out DIR

DIR (inputs) holds:
  configs/<name>/tokenizer_config.json   real tokenizer configs (llama3, qwen3, demo) with their chat_template
  templates/<name>.jinja                 well-known public templates (tests/fixtures/chat/templates)
  tokenizer.json                         any small tokenizer.json, only to build a tokenizer object around a template
Writes under --out:
  <name>.json      for every template: its source, bos/eos as the template saw them, and one case per conversation
                   with the rendered string or the error it raised
  snippets.json    small templates, each exercising one feature (filters, tests, methods, whitespace control, errors)
"""
import argparse, json, os, traceback

import jinja2
import transformers
from transformers import PreTrainedTokenizerFast

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
USER = {"role": "user", "content": "Hello! What is the capital of France?"}
ASSISTANT = {"role": "assistant", "content": "  The capital of France is Paris.  "}
USER2 = {"role": "user", "content": "And of Germany?\nAnswer briefly."}

# (name, messages, add_generation_prompt, extra variables)
GENERIC = [
    ("system_user_gen", [SYSTEM, USER], True, {}),
    ("system_user_nogen", [SYSTEM, USER], False, {}),
    ("user_only_gen", [USER], True, {}),
    ("multi_turn_gen", [SYSTEM, USER, ASSISTANT, USER2], True, {}),
    ("multi_turn_nogen", [USER, ASSISTANT, USER2, {"role": "assistant", "content": "Berlin."}], False, {}),
    ("no_system_multi_turn", [USER, ASSISTANT, USER2], True, {}),
    ("chinese", [{"role": "system", "content": "你是一个乐于助人的助手。"},
                 {"role": "user", "content": "无锡有什么好吃的？"},
                 {"role": "assistant", "content": "无锡有小笼包、酱排骨和太湖三白。"},
                 {"role": "user", "content": "请详细介绍一下酱排骨 🍖。"}], True, {}),
    ("content_parts", [{"role": "user", "content": [{"type": "text", "text": "Describe"},
                                                    {"type": "text", "text": "this."}]}], True, {}),
    ("roles_not_alternating", [USER, USER2], True, {}),
    ("assistant_first", [ASSISTANT, USER], True, {}),
]

WEATHER_TOOL = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "City name, e.g. 无锡"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}

QWEN3 = [
    ("tool_call", [
        {"role": "system", "content": "You are a weather bot."},
        {"role": "user", "content": "What's the weather in Wuxi?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Wuxi", "unit": "celsius"}}}]},
        {"role": "tool", "content": "{\"temperature\": 21, \"condition\": \"sunny\"}"},
        {"role": "assistant", "content": "<think>\nThe tool says sunny.\n</think>\n\nIt is sunny and 21°C in Wuxi."},
        {"role": "user", "content": "Thanks! And tomorrow?"}], True, {"tools": [WEATHER_TOOL]}),
    ("tool_call_string_arguments_two_calls", [
        {"role": "user", "content": "Weather in Wuxi and Suzhou?"},
        {"role": "assistant", "content": "Let me check.", "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Wuxi\"}"}},
            {"id": "call_2", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Suzhou\"}"}}]},
        {"role": "tool", "content": "sunny"},
        {"role": "tool", "content": "rainy"}], True, {"tools": [WEATHER_TOOL]}),
    ("think_in_history", [
        USER, {"role": "assistant", "content": "<think>\nEasy one.\n</think>\n\nParis."}, USER2], True, {}),
    ("think_last_assistant", [
        USER, {"role": "assistant", "content": "<think>\nEasy one.\n</think>\n\nParis."}], False, {}),
    ("reasoning_content", [
        USER, {"role": "assistant", "content": "Paris.", "reasoning_content": "\nThe user asks about France.\n"}], False, {}),
    ("enable_thinking_false", [USER], True, {"enable_thinking": False}),
    ("enable_thinking_true", [USER], True, {"enable_thinking": True}),
    ("system_after_first", [USER, ASSISTANT, {"role": "system", "content": "Be terse."}, USER2], True, {}),
]

# (name, template, extra variables); all render with messages [SYSTEM, USER] and add_generation_prompt true.
SNIPPETS = [
    # whitespace control, trim_blocks and lstrip_blocks
    ("ws_trim_blocks", "{% if true %}\nyes\n{% endif %}\nafter\n", {}),
    ("ws_lstrip_blocks", "start\n    {% if true %}\n  yes\n    {% endif %}\nend", {}),
    ("ws_minus", "a  \n {%- if true -%}  \n b  {%- endif -%}  \n c", {}),
    ("ws_variable_not_stripped", "  {{ 'x' }}  \n{{ 'y' }}\n\n", {}),
    ("ws_variable_minus", "a  \n  {{- ' x ' -}}  \n  b", {}),
    ("ws_comment", "{# comment #}\nafter\n  {# indented #}\nline\nx {#- c -#} y", {}),
    ("ws_plus_disables", "  {%+ if true +%}\nkept{% endif %}|", {}),
    ("ws_tag_mid_line", "x  {% if true %}y{% endif %}  z\n\t {% set a = 1 %}\n{{ a }}", {}),
    ("ws_after_variable_line", "{{ 'a' }}\n  {% if true %}b{% endif %}", {}),
    ("ws_crlf", "line1\r\n{% if true %}\r\nline2\r\n{% endif %}\r\nend\r\n", {}),
    ("ws_for_lines", "{% for m in messages %}\n  {{ m.role }}\n{% endfor %}\n", {}),
    ("ws_two_trailing_newlines", "x\n\n", {}),
    ("ws_raw", "{% raw %}{{ not parsed }} {% if %}{% endraw %}", {}),
    # literals and output of values
    ("lit_strings", "{{ 'single' }}|{{ \"double\" }}|{{ 'tab\\there' }}|{{ 'it\\'s' }}|{{ \"q\\\"q\" }}|{{ '\\u4e2d\\x41\\n' }}|{{ 'a' 'b' }}|{{ 'back\\\\slash' }}|{{ 'unknown\\q' }}", {}),
    ("lit_values", "{{ none }}|{{ None }}|{{ true }}|{{ True }}|{{ false }}|{{ 42 }}|{{ -7 }}|{{ 1.5 }}|{{ 1e3 }}|{{ 1_000 }}|{{ 2.0 }}", {}),
    ("lit_collections", "{{ [1, 'two', none, true, 2.0, [3]] }}|{{ {'k': 'v', 'n': 1, 'x': none} }}|{{ ('a', 1) }}|{{ ('one',) }}|{{ [] }}|{{ {} }}|{{ ['it\\'s', \"q\\\"\"] }}|{{ ['中文\\n'] }}", {}),
    ("float_repr", "{{ 0.1 + 0.2 }}|{{ 1e20 }}|{{ 1.5e-7 }}|{{ 10 / 4 }}|{{ 7 / 7 }}|{{ 1e16 }}|{{ 123456789012345.6 }}|{{ 0.0001 }}|{{ 0.00001 }}|{{ -0.0 }}|{{ 3.14159 }}", {}),
    # arithmetic and comparisons
    ("math", "{{ 7 // 2 }}|{{ -7 // 2 }}|{{ 7 % 3 }}|{{ -7 % 3 }}|{{ 2 ** 10 }}|{{ 2 ** -1 }}|{{ -3 + 1.5 }}|{{ 10 - 2 * 3 }}|{{ (1 + 2) * 3 }}|{{ 7.5 // 2 }}|{{ 'ab' * 3 }}|{{ [1] + [2] }}|{{ -2 ** 2 }}", {}),
    ("concat", "{{ 'a' ~ 1 ~ none ~ true ~ 1.0 ~ missing ~ [1] }}|{{ 'x' + 'y' }}", {}),
    ("compare", "{{ 1 < 2 }}{{ 2 <= 2 }}{{ 3 > 4 }}{{ 'a' < 'b' }}{{ 3 == 3.0 }}{{ 1 != 1 }}{{ true == 1 }}{{ 'a' == 'a' }}{{ [1, 2] == [1, 2] }}{{ none == none }}{{ missing == none }}{{ 1 < 2 < 3 }}", {}),
    ("logic", "{{ true and false }}|{{ 0 or 'x' }}|{{ '' or [] }}|{{ 'a' and 'b' }}|{{ not 0 }}|{{ not missing }}|{{ none or 'd' }}|{{ 1 if 0 else 2 }}|{{ 'yes' if true }}|[{{ 'yes' if false }}]", {}),
    ("membership", "{{ 'a' in 'cat' }}{{ 'user' in ['user', 'x'] }}{{ 'k' in {'k': 1} }}{{ 'z' not in 'abc' }}{{ not 'a' in 'b' }}{{ 1 in [1.0] }}", {}),
    # attribute, item and slice access
    ("access", "{{ messages[0]['role'] }}|{{ messages[0].role }}|{{ messages[-1].content }}|{{ messages[1:] | length }}|{{ 'abcdef'[1:4] }}|{{ 'abcdef'[::-1] }}|{{ 'abcdef'[::2] }}|{{ [1, 2, 3][-2:] }}|{{ [1, 2, 3][:-1] }}|{{ 'abc'[5:] }}|{{ [1, 2, 3][1] }}|{{ 'abc'.0 }}|{{ [4, 5].1 }}", {}),
    ("access_missing", "[{{ messages[0].nope }}][{{ messages[0]['nope'] }}][{{ none.x }}][{{ messages[5] }}][{{ 'abc'.nope }}][{{ messages[0].nope is defined }}]", {}),
    ("dict_attribute_vs_key", "{% set d = {'items': 'key', 'a': 1} %}{{ d['items'] }}|{{ d.items() | list }}|{{ d.get('a') }}|{{ d.get('b') }}|{{ d.get('b', 'dflt') }}|{{ d.keys() | list }}|{{ d.values() | list }}", {}),
    # undefined
    ("undefined", "[{{ missing }}][{{ missing | length }}][{{ 'y' if missing else 'n' }}][{{ missing is defined }}][{{ missing is undefined }}][{{ missing | default('d') }}][{% for x in missing %}x{% endfor %}][{{ missing | trim }}][{{ missing | string }}][{{ missing | list }}]", {}),
    ("undefined_attribute_error", "{{ missing.attr }}", {}),
    ("undefined_nested_error", "{{ messages[0].nope.deeper }}", {}),
    ("undefined_add_error", "{{ missing + 1 }}", {}),
    ("type_error_add", "{{ 'a' + 1 }}", {}),
    ("call_undefined_error", "{{ nope() }}", {}),
    ("string_method_on_list_error", "{{ messages.startswith('x') }}", {}),
    # variables passed by transformers
    ("globals", "{{ tools is defined }}|{{ tools is none }}|{{ documents is defined }}|{{ documents is none }}|{{ add_generation_prompt }}|{{ bos_token is defined }}|{{ eos_token }}|{{ messages | length }}", {}),
    ("globals_tools", "{{ tools | length }}|{{ tools[0].function.name }}|{{ documents | tojson }}|{{ custom }}", {"tools": [WEATHER_TOOL], "documents": [{"title": "t", "text": "x"}], "custom": "value"}),
    # filters
    ("filter_trim", "[{{ '  a b  ' | trim }}][{{ 'xxaxx' | trim('x') }}][{{ '\\n\\t a \\n' | trim }}]", {}),
    ("filter_case", "{{ 'hello WORLD' | upper }}|{{ 'HeLLo' | lower }}|{{ 'hello WORLD' | capitalize }}|{{ 'hello big-world' | title }}", {}),
    ("filter_length", "{{ [1, 2, 3] | length }}|{{ 'abcd' | length }}|{{ {'a': 1} | length }}|{{ messages | count }}", {}),
    ("filter_tojson", "{{ {'a': 'x<y>&\\'', 'b': [1, 2.5, true], 'c': none, 'd': '中文', 'e': 'line\\nbreak\\t\"q\"\\\\'} | tojson }}", {}),
    ("filter_tojson_indent", "{{ [1, {'a': 2, 'b': [], 'c': {}}] | tojson(indent=2) }}|{{ {} | tojson(indent=2) }}|{{ 'x' | tojson }}|{{ {'b': 1, 'a': 2} | tojson(indent=4) }}", {}),
    ("filter_tojson_tools", "{% for tool in tools %}{{ tool | tojson }}\n{{ tool | tojson(indent=4) }}{% endfor %}", {"tools": [WEATHER_TOOL]}),
    ("filter_string_int", "{{ 42 | string }}|{{ '7' | int + 1 }}|{{ 3.9 | int }}|{{ 'x' | int }}|{{ none | string }}|{{ [1] | string }}|{{ true | string }}|{{ '3' | float }}", {}),
    ("filter_join", "{{ ['a', 'b', 'c'] | join(', ') }}|{{ [1, 2] | join }}|{{ messages | join('/', attribute='role') }}|{{ 'abc' | join('-') }}", {}),
    ("filter_first_last", "{{ [1, 2, 3] | first }}|{{ [1, 2, 3] | last }}|{{ 'abc' | first }}|{{ 'abc' | last }}|[{{ [] | first }}]|{{ (messages | first).role }}", {}),
    ("filter_default", "{{ missing | default('d') }}|{{ none | default('d') }}|{{ '' | default('d') }}|{{ '' | default('d', true) }}|{{ 'v' | d('x') }}|{{ false | default('d', boolean=true) }}", {}),
    ("filter_items", "{% for k, v in {'x': 1, 'y': 'two'} | items %}{{ k }}={{ v }};{% endfor %}", {}),
    ("filter_replace", "{{ 'a-b-c' | replace('-', '+') }}|{{ 'aaa' | replace('a', 'b', 2) }}|{{ 'hello'.replace('l', 'L') }}", {}),
    ("filter_list", "{{ 'abc' | list }}|{{ {'a': 1, 'b': 2} | list }}|{{ (1, 2) | list }}", {}),
    ("filter_selectattr", "{{ messages | selectattr('role', 'equalto', 'user') | list | length }}|{{ messages | rejectattr('role', 'eq', 'user') | map(attribute='role') | join('+') }}|{{ messages | selectattr('content') | list | length }}|{{ messages | selectattr('role', '==', 'system') | map(attribute='content') | first }}|{{ messages | rejectattr('missing') | list | length }}|{{ messages | selectattr('role', 'in', ['user', 'x']) | list | length }}", {}),
    ("filter_map", "{{ messages | map(attribute='role') | list }}|{{ ['a', 'B'] | map('upper') | join }}|{{ messages | map(attribute='nope', default='z') | join }}|{{ [1, 2, 3, 4] | select('odd') | list }}|{{ [1, 2, 3, 4] | reject('even') | list }}", {}),
    ("filter_safe_misc", "{{ '<b>' | safe }}|{{ [3, 1, 2] | sort | list }}|{{ [1, 1, 2] | unique | list }}|{{ [1, 2] | reverse | list }}|{{ 'abc' | reverse }}|{{ -3 | abs }}|{{ 2.567 | round(1) }}|{{ [1, 2, 3] | sum }}|{{ [3, 1] | min }}{{ [3, 1] | max }}|{{ 'a\\nb' | indent(2) }}|{{ {'b': 1, 'a': 2} | dictsort }}", {}),
    # tests
    ("tests", "{{ 4 is even }}{{ 3 is odd }}{{ 9 is divisibleby(3) }}{{ 'x' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ 'a' is iterable }}{{ 1 is number }}{{ 'a' is lower }}{{ 'A' is upper }}{{ 1 is integer }}{{ 1.5 is float }}{{ true is boolean }}{{ [] is sequence }}{{ none is none }}{{ 1 is not none }}{{ true is true }}{{ 0 is false }}{{ 5 is equalto 5 }}{{ 5 is eq(5) }}{{ 5 is ne 6 }}{{ 3 is gt 2 }}{{ 'a' is in 'abc' }}{{ range is callable }}{{ 1 is sameas 1 }}{{ true is integer }}{{ messages is sequence }}{{ messages[0] is mapping }}", {}),
    ("test_precedence", "{{ not missing is defined }}|{{ 1 + 1 is even }}|{{ messages | length is odd }}|{{ 'a' ~ 'b' is string }}", {}),
    # string methods
    ("str_methods", "[{{ '  Hi  '.strip() }}][{{ 'xxhixx'.strip('x') }}][{{ '  l'.lstrip() }}][{{ 'r  '.rstrip() }}][{{ '\\nhi\\n'.lstrip('\\n') }}][{{ 'hi\\n\\n'.rstrip('\\n') }}][{{ 'abc'.startswith('a') }}][{{ 'abc'.startswith(('x', 'a')) }}][{{ 'abc'.endswith('bc') }}][{{ 'abc'.upper() }}][{{ 'ABC'.lower() }}][{{ 'hello big-world'.title() }}][{{ 'hello'.capitalize() }}]", {}),
    ("str_split", "{{ 'a,b,,c'.split(',') }}|{{ ' a  b\\nc '.split() }}|{{ 'a,b,c'.split(',', 1) }}|{{ 'a</think>b</think>c'.split('</think>')[-1] }}|{{ 'a b c'.rsplit(' ', 1) }}|{{ 'l1\\nl2'.splitlines() }}", {}),
    ("str_misc", "{{ 'abc'.find('c') }}|{{ 'a-b'.replace('-', '') }}|{{ ', '.join(['x', 'y']) }}|{{ 'abcabc'.count('b') }}|{{ '12'.isdigit() }}|{{ 'x{}y'.format(1) }}", {}),
    # statements
    ("for_loop_vars", "{% for m in messages %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}|{{ loop.previtem.role if loop.previtem is defined else '-' }}|{{ loop.nextitem['role'] if loop.nextitem is defined else '-' }};{% endfor %}", {}),
    ("for_else_filter", "{% for x in [] %}never{% else %}empty{% endfor %}|{% for i in [1, 2, 3, 4, 5] if i is odd %}{{ i }}{{ loop.length }}{% if not loop.last %},{% endif %}{% endfor %}|{% for i in range(3) %}{{ i }}{% endfor %}|{% for i in range(1, 7, 2) %}{{ i }}{% endfor %}", {}),
    ("for_unpack", "{% for k, v in {'x': 1, 'y': [2]}.items() %}{{ k }}:{{ v }};{% endfor %}|{% for a, b in [[1, 2], (3, 4)] %}{{ a + b }}{% endfor %}|{% for c in 'ab' %}{{ c }}{% endfor %}|{% for k in {'p': 1, 'q': 2} %}{{ k }}{% endfor %}", {}),
    ("for_nested_loop", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ loop.index }}{{ b }}{% endfor %}{{ loop.index }};{% endfor %}", {}),
    ("for_break_continue", "{% for i in range(10) %}{% if i == 1 %}{% continue %}{% endif %}{% if i == 4 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("for_cycle", "{% for i in range(4) %}{{ loop.cycle('a', 'b') }}{% endfor %}", {}),
    ("set_scoping", "{% set x = 1 %}{% for i in [1, 2] %}{% set x = x + 10 %}{{ x }},{% endfor %}{{ x }}|{% if true %}{% set y = 5 %}{% endif %}{{ y }}", {}),
    ("set_namespace", "{% set ns = namespace(count=0, found=false, name='n') %}{% for m in messages %}{% set ns.count = ns.count + 1 %}{% if m.role == 'user' %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.count }}|{{ ns.found }}|{{ ns.name }}|{{ ns.missing is defined }}", {}),
    ("set_block", "{% set captured %}v={{ 1 + 1 }}\n{% endset %}[{{ captured | upper }}]", {}),
    ("set_tuple", "{% set a, b = 1, 2 %}{{ a }}{{ b }}|{% set t = (1, 2) %}{{ t }}", {}),
    ("if_elif_else", "{% for n in [1, 2, 3] %}{% if n == 1 %}one{% elif n == 2 %}two{% else %}many{% endif %};{% endfor %}", {}),
    ("macro", "{% macro greet(name, punct='!') %}Hello {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }}|{{ greet('B', '?') }}|{{ greet(name='C', punct='.') }}|{{ greet('D') | upper }}", {}),
    ("macro_sees_globals", "{% macro role(i) -%}\n  {{ messages[i].role }}/{{ bos_token is defined }}\n{%- endmacro %}{{ role(0) }}{{ role(1) }}", {}),
    ("generation_block", "a{% generation %}gen {{ messages | length }}{% endgeneration %}b", {}),
    ("filter_block", "{% filter upper %}shout {{ 'it' }}{% endfilter %}", {}),
    ("raise_exception", "{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}x", {}),
    ("strftime_type", "{{ strftime_now('%Y') | length }}|{{ strftime_now('%d %B %Y') is string }}", {}),
    # syntax errors
    ("syntax_unclosed_if", "line1\n{% if true %}\nno end", {}),
    ("syntax_bad_expr", "ok\n  {{ 1 + }}", {}),
    ("syntax_unexpected_end", "{% for x in [1] %}{% endif %}", {}),
    ("syntax_unknown_tag", "{% frobnicate %}", {}),
    ("syntax_unclosed_string", "{{ 'abc }}", {}),
    ("syntax_unclosed_variable", "abc {{ x ", {}),
    ("syntax_bad_char", "{{ a $ b }}", {}),
]

REAL = {  # name -> (config dir name, extra conversations)
    "llama3": ("llama3", []),
    "qwen3": ("qwen3", QWEN3),
    "demo": ("demo", []),
}
FIXTURE_TOKENS = {  # template file -> (bos, eos) of the models that use it
    "chatml-qwen2": (None, "<|im_end|>"),
    "mistral-instruct": ("<s>", "</s>"),
    "llama2-chat": ("<s>", "</s>"),
    "chatglm3": (None, "</s>"),
    "zephyr": ("<s>", "</s>"),
    "gemma": ("<bos>", "<eos>"),
}


def make_tokenizer(tokenizer_json, bos, eos):
    kwargs = {}
    if bos is not None:
        kwargs["bos_token"] = bos
    if eos is not None:
        kwargs["eos_token"] = eos
    return PreTrainedTokenizerFast(tokenizer_file=tokenizer_json, **kwargs)


def render(tok, template, messages, add_generation_prompt, extra):
    """The string transformers renders, or raises what it raised."""
    extra = dict(extra)
    tools = extra.pop("tools", None)
    documents = extra.pop("documents", None)
    result = tok.apply_chat_template(messages, tools=tools, documents=documents, chat_template=template,
                                     add_generation_prompt=add_generation_prompt, tokenize=False, **extra)
    if isinstance(result, str):
        return result
    raise RuntimeError(f"apply_chat_template returned {type(result).__name__}, not a string")


def run_case(tok, template, name, messages, gen, extra):
    case = {"name": name, "messages": messages, "add_generation_prompt": gen, "extra": extra}
    try:
        case["expected"] = render(tok, template, messages, gen, extra)
    except Exception as e:  # the error is the reference for cases that must fail
        case["error"] = str(e)
        case["error_type"] = type(e).__name__
    return case


def special_tokens_seen(tok):
    probe = "{{ bos_token if bos_token is defined else '<undefined>' }}\x00{{ eos_token if eos_token is defined else '<undefined>' }}"
    bos, eos = render(tok, probe, [USER], False, {}).split("\x00")
    return (None if bos == "<undefined>" else bos), (None if eos == "<undefined>" else eos)


def write(out, name, payload):
    with open(os.path.join(out, name + ".json"), "w", encoding="utf-8") as f:
        json.dump(payload, f, ensure_ascii=False, indent=1)
        f.write("\n")


def template_fixture(out, name, source, template, tok, conversations):
    bos, eos = special_tokens_seen(tok)
    cases = [run_case(tok, template, *c) for c in conversations]
    write(out, name, {"template_name": name, "source": source, "bos_token": bos, "eos_token": eos,
                      "template": template, "cases": cases})
    failed = [c["name"] for c in cases if "error" in c]
    print(f"{name}: {len(cases)} cases, errors in {failed}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--inputs", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    print(f"transformers {transformers.__version__}, jinja2 {jinja2.__version__}")
    tokenizer_json = os.path.join(args.inputs, "tokenizer.json")
    for name, (config_dir, specific) in REAL.items():
        try:
            config = json.load(open(os.path.join(args.inputs, "configs", config_dir, "tokenizer_config.json"), encoding="utf-8"))
            token = lambda key: config.get(key)["content"] if isinstance(config.get(key), dict) else config.get(key)
            tok = make_tokenizer(tokenizer_json, token("bos_token"), token("eos_token"))
            template_fixture(args.out, name, f"{config_dir}/tokenizer_config.json", config["chat_template"], tok, GENERIC + specific)
        except Exception:
            traceback.print_exc()
    for name, (bos, eos) in FIXTURE_TOKENS.items():
        try:
            template = open(os.path.join(args.inputs, "templates", name + ".jinja"), encoding="utf-8").read()
            tok = make_tokenizer(tokenizer_json, bos, eos)
            template_fixture(args.out, name, f"templates/{name}.jinja", template, tok, GENERIC)
        except Exception:
            traceback.print_exc()
    tok = make_tokenizer(tokenizer_json, "<s>", "</s>")
    bos, eos = special_tokens_seen(tok)
    snippets = []
    for name, template, extra in SNIPPETS:
        case = run_case(tok, template, name, [SYSTEM, USER], True, extra)
        case["template"] = template
        snippets.append(case)
    write(args.out, "snippets", {"bos_token": bos, "eos_token": eos, "cases": snippets})
    print(f"snippets: {len(snippets)}, errors in {[c['name'] for c in snippets if 'error' in c]}")


if __name__ == "__main__":
    main()
