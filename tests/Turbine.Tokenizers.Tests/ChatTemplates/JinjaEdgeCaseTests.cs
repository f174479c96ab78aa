using Turbine.Tokenizers.ChatTemplates;

namespace Turbine.Tokenizers.Tests.ChatTemplates;

/// <summary>
/// Edge cases of the Jinja subset (numbers, reprs, slicing, scoping, whitespace, filters). The expected strings are
/// jinja2 3.1.6's renders (the version under transformers 5.17 on the reference machine) in transformers' environment:
/// trim_blocks, lstrip_blocks, loop controls, its tojson; messages = system "You are helpful." and user "Hi there".
/// </summary>
public sealed class JinjaEdgeCaseTests
{
    private static readonly ChatMessage[] Messages = [new("system", "You are helpful."), new("user", "Hi there")];

    private static ChatTemplate Parse(string template) =>
        ChatTemplate.Parse(template, new Dictionary<string, string> { ["bos_token"] = "<s>", ["eos_token"] = "</s>" });

    [Theory]
    [InlineData("{% raw %}\n  a\n  {% endraw %}\nb",
                "\n  a\nb")]
    [InlineData("{% raw -%}\n  a {%- endraw %}\nb",
                "ab")]
    [InlineData("x\n  {% raw %}r{% endraw %}",
                "x\nr")]
    [InlineData("{{+1}}",
                "1")]
    [InlineData("{%+ if true %}x{% endif %}",
                "x")]
    [InlineData("{% for m in messages %}\n    {% if m.role == 'user' %}\n        U:{{ m.content }}\n    {% else %}\n        S:{{ m.content }}\n    {% endif %}\n{% endfor %}",
                "        S:You are helpful.\n        U:Hi there\n")]
    [InlineData("  {#- c #}\n  x",
                "  x")]
    [InlineData("a\n\n   {%- if true %}\n\n  b{% endif %}",
                "a\n  b")]
    [InlineData("{% if true -%}\n\n  x  \n{%- endif %}",
                "x")]
    [InlineData("{{ 'a' -}}\n\n{{- 'b' }}",
                "ab")]
    [InlineData("{% set x = [1,2,3] %}{{ x[1:] }}{{ x[:1] }}{{ x[::-1] }}{{ x[-1:] }}{{ x[5:] }}{{ x[-10:2] }}{{ 'héllo'[1:3] }}{{ x[::-2] }}{{ x[2:0:-1] }}",
                "[2, 3][1][3, 2, 1][3][][1, 2]él[3, 1][3, 2]")]
    [InlineData("{{ 10 / 3 }}|{{ 2 ** 0.5 }}|{{ 1e-10 }}|{{ 123456789.123 }}|{{ 1/3 }}|{{ 100.0 }}|{{ 1e15 }}|{{ 12345678901234567.0 }}|{{ -1.5e-5 }}|{{ 5e-324 }}|{{ 1.7976931348623157e308 }}",
                "3.3333333333333335|1.4142135623730951|1e-10|123456789.123|0.3333333333333333|100.0|1000000000000000.0|1.2345678901234568e+16|-1.5e-05|5e-324|1.7976931348623157e+308")]
    [InlineData("{{ [1.5, 'a\\u00e9\\u2028\\x00', none] }}|{{ {'a': (1, 2)} }}|{{ \"it's \\\"q\\\"\" }}|{{ ['it\\'s \"q\"'] }}|{{ ['\\x7f\\x80\\xa0\\xad'] }}",
                "[1.5, 'aé\\u2028\\x00', None]|{'a': (1, 2)}|it's \"q\"|['it\\'s \"q\"']|['\\x7f\\x80\\xa0\\xad']")]
    [InlineData("{{ 'ab' ~ 1.0 ~ 2 }}{{ 3 ~ 4 }}{{ 'x' * 0 }}{{ [1] * 2 }}{{ 7 % -3 }}{{ -7.5 % 2 }}{{ 7 // -2 }}{{ 2 ** 3 ** 2 }}{{ (2 ** 3) ** 2 }}",
                "ab1.0234[1, 1]-20.5-46464")]
    [InlineData("{{ 1 == 1.0 == true }}{{ 'a' != 'b' }}{{ [1, [2]] == [1, [2]] }}{{ (1,) == [1] }}{{ {'a': 1} == {'a': 1.0} }}{{ 2 > 1 > 0 }}{{ 'b' >= 'a' }}",
                "TrueTrueTrueFalseTrueTrueTrue")]
    [InlineData("{% for a in [3, 1, 2] | sort %}{{ a }}{% endfor %}{{ ['b', 'A', 'c'] | sort }}{{ ['b', 'A', 'c'] | sort(reverse=true) }}{{ ['b', 'A', 'a'] | unique | list }}{{ ['b', 'A'] | max }}{{ ['b', 'A'] | min }}",
                "123['A', 'b', 'c']['c', 'b', 'A']['b', 'A']bA")]
    [InlineData("{{ 'Hello World' | wordcount }}{{ 'x' | e }}{{ '<&>\"\\'' | escape }}{{ [1,2,3,4,5] | batch(2) | list }}{{ 3.7 | round }}{{ 3.14159 | round(2, 'floor') }}{{ -2.5 | round }}",
                "2x&lt;&amp;&gt;&#34;&#39;[[1, 2], [3, 4], [5]]4.03.14-2.0")]
    [InlineData("{{ 'a\\nb\\n' | indent(2, true) }}|{{ 'a\\n\\nb' | indent(2, blank=true) }}|{{ 'a\\n\\nb' | indent }}",
                "  a\n  b\n|a\n  \n  b|a\n\n    b")]
    [InlineData("{{ 'abc' | title }}{{ 'hello-world foo_bar' | title }}{{ \"it's\" | title }}{{ \"it's\".title() }}{{ 'ÉCOLE' | lower }}{{ 'straße' | upper }}",
                "AbcHello-World Foo_barIt'sIt'SécoleSTRASSE")]
    [InlineData("{{ '  a  b  '.split(' ') }}{{ 'a  b c'.split(None, 1) }}{{ 'a,b,c'.rsplit(',', 1) }}{{ '  a b c  '.rsplit(None, 1) }}{{ ''.split() }}{{ ''.split(',') }}",
                "['', '', 'a', '', 'b', '', '']['a', 'b c']['a,b', 'c']['  a b', 'c'][]['']")]
    [InlineData("{{ 'aaa'.replace('a', 'b', 1) }}{{ 'abc'.replace('', '-') }}{{ 'x'.center if false }}{{ 'abc'.find('z') }}{{ 'a b'.split()|length }}",
                "baa-a-b-c--12")]
    [InlineData("{% set ns = namespace(items=[]) %}{% for i in range(3) %}{% set ns.items = ns.items + [i] %}{% endfor %}{{ ns.items }}{{ ns }}",
                "[0, 1, 2]<Namespace {'items': [0, 1, 2]}>")]
    [InlineData("{% macro m(a, b) %}{{ a }}-{{ b }}{% endmacro %}[{{ m(1) }}]{% macro r(n) %}{% if n > 0 %}{{ n }}{{ r(n - 1) }}{% endif %}{% endmacro %}{{ r(3) }}",
                "[1-]321")]
    [InlineData("{% for i in range(3) %}{% for j in range(3) %}{% if j > i %}{% break %}{% endif %}{{ i }}{{ j }} {% endfor %}{% endfor %}",
                "00 10 11 20 21 22 ")]
    [InlineData("{% for x in [1, 2, 3] %}{{ loop.revindex0 }}{{ loop.cycle('a', 'b', 'c') }}{% if loop.previtem is defined %}<{{ loop.previtem }}{% endif %}{% endfor %}",
                "2a1b<10c<2")]
    [InlineData("{% if messages %}{% set first = messages[0] %}{% endif %}{{ first.role }}{% for m in messages %}{% set last = m %}{% endfor %}[{{ last }}]",
                "system[]")]
    [InlineData("{{ messages | map(attribute='role') | map('upper') | join(',') }}{{ messages | selectattr('role', 'ne', 'user') | list | length }}{{ [0, 1, '', 'a', none] | select | list }}{{ [1,2,3] | reject('odd') | list }}",
                "SYSTEM,USER1[1, 'a'][2]")]
    [InlineData("{{ messages | map(attribute='content') | map('length') | sum }}{{ [{'a': 2}, {'a': 1}] | sort(attribute='a') }}{{ [{'a': {'b': 5}}] | map(attribute='a.b') | first }}",
                "24[{'a': 1}, {'a': 2}]5")]
    [InlineData("{{ {'b': 2, 'A': 1} | dictsort }}{{ {'b': 2, 'a': 1} | dictsort(by='value', reverse=true) }}",
                "[('A', 1), ('b', 2)][('b', 2), ('a', 1)]")]
    [InlineData("{{ none | string }}{{ none ~ '' }}{{ none | default('d') }}{{ none | tojson }}{{ 1.0 | tojson }}{{ 1e20 | tojson }}{{ [1, 2] | tojson(indent='\\t') }}{{ {'a': 1} | tojson(separators=(',', ':')) }}{{ '\\u2028é\\x01' | tojson }}{{ 'é' | tojson(ensure_ascii=true) }}",
                "NoneNoneNonenull1.01e+20[\n\t1,\n\t2\n]{\"a\":1}\"\u2028é\\u0001\"\"\\u00e9\"")]
    [InlineData("{{ 'abc' is lower }}{{ 'ABC' is upper }}{{ '' is lower }}{{ 1.0 is integer }}{{ 1 is float }}{{ 'a' is sequence }}{{ 1 is iterable }}{{ none is mapping }}{{ 'x' is in ['x'] }}{{ 4 is ge 4 }}{{ 3 is lt 2 }}{{ 2 is sameas 2.0 }}",
                "TrueTrueFalseFalseFalseTrueFalseFalseTrueTrueFalseFalse")]
    [InlineData("{{ messages[0]['role'] | upper if messages else 'none' }}{{ messages | length > 1 }}{{ 1 in [1, 2] and 'a' in 'abc' or false }}",
                "SYSTEMTrueTrue")]
    [InlineData("{% set d = dict(a=1, b='x') %}{{ d }}{{ d | length }}{% set e = {} %}{{ e.get('z') is none }}{{ e.items() | list }}",
                "{'a': 1, 'b': 'x'}2True[]")]
    [InlineData("{% for k, v in {'x': {'y': 1}}.items() %}{{ k }}={{ v.y }}{% endfor %}{% for a, (b, c) in [(1, (2, 3))] %}{{ a }}{{ b }}{{ c }}{% endfor %}",
                "x=1123")]
    [InlineData("{%- for message in messages -%}\n{{- message.role -}}\n{%- if not loop.last -%},{%- endif -%}\n{%- endfor -%}",
                "system,user")]
    [InlineData("{% filter trim %}   padded   {% endfilter %}|{% set s | upper %}abc{% endset %}{{ s }}",
                "padded|ABC")]
    [InlineData("{{ (messages | last).content }}{{ messages[-1]['content'][:2] }}{{ messages[0].content.split(' ')[0] }}{{ messages[0].content[-1] }}",
                "Hi thereHiYou.")]
    [InlineData("{{ [3, 1] | first }}{{ 'abc' | last }}{{ [] | last is defined }}{{ {} | first is defined }}{{ {'a': 1} | first }}",
                "3cFalseFalsea")]
    [InlineData("{{ 1 | float }}{{ 'x' | float }}{{ '2.5' | float }}{{ '1e3' | int }}{{ ' 42 ' | int }}{{ true | int }}{{ '0x1A' | int }}{{ '12' | int(base=16) if false }}{{ 'x' | int(7) }}",
                "1.00.02.5100042107")]
    [InlineData("{{ messages[0] | items | list }}{{ messages[0].keys() | list }}{{ messages[0] | list }}{{ messages | selectattr('content', 'string') | list | length }}",
                "[('role', 'system'), ('content', 'You are helpful.')]['role', 'content']['role', 'content']2")]
    [InlineData("{{ range(5) | list }}{{ range(5, 0, -2) | list }}{{ range(0) | list }}{{ range(3) | sum }}{{ range(3) | length }}",
                "[0, 1, 2, 3, 4][5, 3, 1][]33")]
    [InlineData("{{ '{}-{}'.format(1, 'a') }}{{ '{0}{0}'.format('x') }}{{ '{n}'.format(n=3) }}",
                "1-axx3")]
    [InlineData("{%- if messages[0]['role'] == 'system' -%}\n  {%- set sys = messages[0]['content'] -%}\n{%- else -%}\n  {%- set sys = '' -%}\n{%- endif -%}\n[{{ sys }}]\n{% for m in messages[1:] %}\n  {{ m.content }}\n{% endfor %}",
                "[You are helpful.]\n  Hi there\n")]
    [InlineData("a {{- ' b ' }} c\n  {%- if true %} d {% endif -%}\n  e",
                "a b  c d e")]
    [InlineData("  {% if true %}  x  {% endif %}  \n  y",
                "  x    \n  y")]
    [InlineData("{% if true %}a{% else %}b{% endif %}\n\n{% if false %}\na\n{% elif true %}\nc\n{% endif %}",
                "a\nc\n")]
    [InlineData("\t{% for m in messages %}\t{{ m.role }}\n\t{% endfor %}",
                "\tsystem\n\tuser\n")]
    [InlineData("{# multi\nline\ncomment #}\n  {#- x -#}\n  text",
                "text")]
    [InlineData("{% set date_string = '26 Jul 2024' if not date_string is defined else date_string %}{{ date_string }}",
                "26 Jul 2024")]
    [InlineData("{% set tools_in_user_message = true if tools_in_user_message is not defined %}{{ tools_in_user_message }}",
                "True")]
    [InlineData("{%- for message in messages %}{%- if message['content'] is string %}{{- message['content'] | trim }}{%- else %}{%- for content in message['content'] %}{%- if content['type'] == 'text' %}{{- content['text'] | trim }}{%- endif %}{%- endfor %}{%- endif %}{%- endfor %}",
                "You are helpful.Hi there")]
    [InlineData("{{ '  a b  ' | trim }}{{ 'a' | center(5) if false }}{{ messages | map(attribute='role') | unique | list }}{{ 'x,y' | replace(',', '\\n') }}",
                "a b['system', 'user']x\ny")]
    [InlineData("{% for i in range(3) %}{% set ns = namespace(v=i) %}{{ ns.v }}{% endfor %}{% set a = 1 %}{% macro f() %}{{ a }}{% endmacro %}{% set a = 2 %}{{ f() }}",
                "0122")]
    [InlineData("{{ [1,2,3][1:][0] }}{{ 'abc'[-2:][0] }}{{ messages[1:][0].role }}{{ (messages|selectattr('role','equalto','user')|list)[-1].content }}",
                "2buserHi there")]
    [InlineData("{% set x = 'a' %}{% set y = x ~ 'b' %}{% set x = x + y %}{{ x }}{% set l = [] %}{% set l = l + ['q'] %}{{ l }}",
                "aab['q']")]
    [InlineData("{{ 1 is number }}{{ true is number }}{{ 1.5 is number }}{{ 'a' is number }}{{ none is string }}{{ messages[0] is iterable }}",
                "TrueTrueTrueFalseFalseTrue")]
    [InlineData("{% if not messages | selectattr('role', 'equalto', 'tool') | list %}no tools{% endif %}{% if messages[-1]['role'] in ['user', 'tool'] %}!{% endif %}",
                "no tools!")]
    [InlineData("{{ '<|im_start|>' + messages[0].role + '\\n' }}{{- 'x' }}",
                "<|im_start|>system\nx")]
    [InlineData("{{ 'Ab'.swapcase() if false }}{{ 'abc'.upper()[0] }}{{ 'a b c'.split()[1:] | join('+') }}{{ 'x'.join(['1', '2']) }}",
                "Ab+c1x2")]
    [InlineData("[{{ 'a' | center(4) }}][{{ 'ab' | center(5) }}][{{ 'ab' | center(6) }}][{{ '%s-%d%%' | format('x', 3.9) }}][{{ '%r' | format('q') }}]",
                "[ a  ][  ab ][  ab  ][x-3%]['q']")]
    [InlineData("{{ '  a b c  '.split(None, 1) }}{{ '  a b c  '.rsplit(None, 1) }}{{ 'straße' | upper }}{{ 'ß'.upper() }}",
                "['a', 'b c  ']['  a b', 'c']STRASSESS")]
    [InlineData("{% for c in 'ab' %}{{ loop.index }}{{ c }}{% else %}none{% endfor %}{% for x in none or [] %}{% else %}E{% endfor %}",
                "1a2bE")]
    public void RendersAsJinja2(string template, string expected) => Assert.Equal(expected, Parse(template).Render(Messages, addGenerationPrompt: true));

    [Theory]
    [InlineData("{{ 'x' if none else 'y' }}{{ 1 if 1 if 0 else 0 else 2 }}{{ not not 1 }}{{ not 1 == 2 }}{{ -1 | abs }}{{ - 2 ** 2 }}{{ 1 + -1 }}{{ (1, 2)[0] }}{{ [1, 2].0 }}")]
    [InlineData("{{ 'The %s' if false else 'y' }}{{ 'a' 'b' \"c\" }}{{ 'multi\nline' }}{{ 'tab\\ttab' }}{{ '\\101\\x41\\u0041\\U00000041' }}{{ '\\N' }}")]
    public void FailsAsJinja2(string template) =>
        Assert.Equal(ChatTemplateErrorKind.Syntax, Assert.Throws<ChatTemplateException>(() => Parse(template)).Kind);
}
