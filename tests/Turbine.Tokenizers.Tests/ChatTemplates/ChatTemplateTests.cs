using System.Text.Json;
using System.Text.Json.Nodes;
using Turbine.Tokenizers.ChatTemplates;

namespace Turbine.Tokenizers.Tests.ChatTemplates;

public sealed class ChatTemplateTests
{
    private static readonly ChatMessage[] Conversation = [new("system", "Be brief."), new("user", "Hi")];

    private static string Render(string template, IReadOnlyDictionary<string, object?>? extra = null, IReadOnlyList<ChatMessage>? messages = null) =>
        ChatTemplate.Parse(template, new Dictionary<string, string> { ["bos_token"] = "<s>", ["eos_token"] = "</s>" })
            .Render(messages ?? Conversation, addGenerationPrompt: true, extra);

    private static ChatTemplateException Fails(string template, IReadOnlyDictionary<string, object?>? extra = null) =>
        Assert.Throws<ChatTemplateException>(() => Render(template, extra));

    // ---- syntax errors carry line and column ----

    [Theory]
    [InlineData("ok\n  {{ 1 + }}", 2, 10)]
    [InlineData("{{ a $ b }}", 1, 6)]
    [InlineData("\n\n  {% frobnicate %}", 3, 6)]
    [InlineData("{{ x | nope }}", 1, 8)]
    [InlineData("{% if x is frob %}{% endif %}", 1, 9)]
    [InlineData("a\n{{ 'abc }}", 2, 4)]
    [InlineData("{% for x in [1] %}\n{% endif %}", 2, 4)]
    [InlineData("{% break %}", 1, 4)]
    [InlineData("x {{ y", 1, 3)]
    [InlineData("{# never closed", 1, 1)]
    [InlineData("{% set %}", 1, 8)]
    [InlineData("{{ [1, 2 }}", 1, 10)]
    public void SyntaxErrorsHaveLineAndColumn(string template, int line, int column)
    {
        var error = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse(template));
        Assert.Equal(ChatTemplateErrorKind.Syntax, error.Kind);
        Assert.Equal((line, column), (error.Line, error.Column));
        Assert.Contains($"line {line}, column {column}", error.Message);
    }

    [Fact]
    public void UnclosedBlockNamesTheBlock()
    {
        var error = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Parse("line1\n{% if true %}\nno end"));
        Assert.Equal(3, error.Line);
        Assert.Contains("'endif'", error.Detail);
        Assert.Contains("innermost block that needs to be closed is 'if'", error.Detail);
    }

    // ---- raise_exception and render errors ----

    [Fact]
    public void RaiseExceptionSurfacesTheTemplateMessage()
    {
        var error = Fails("{% if messages[0].role == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}");
        Assert.Equal(ChatTemplateErrorKind.Raised, error.Kind);
        Assert.Equal("System role not supported", error.Detail);
        Assert.Equal("System role not supported", error.Message);
    }

    [Fact]
    public void MistralRejectsNonAlternatingRoles()
    {
        var fixture = ChatFixtures.Load("mistral-instruct");
        var template = ChatTemplate.Parse(fixture.Template, fixture.SpecialTokens());
        var error = Assert.Throws<ChatTemplateException>(() => template.Render([new("user", "a"), new("user", "b")], true));
        Assert.Equal(ChatTemplateErrorKind.Raised, error.Kind);
        Assert.Equal("Conversation roles must alternate user/assistant/user/assistant/...", error.Detail);
        Assert.Equal("<s>[INST] a [/INST]ok</s>", template.Render([new("user", "a"), new("assistant", "ok")], false));
    }

    [Theory]
    [InlineData("{{ 'a' }}\n\n{{ 'a' + 1 }}", 3, "can only concatenate str")]
    [InlineData("{{ missing.attr }}", 1, "'missing' is undefined")]
    [InlineData("{{ messages[0].nope.deeper }}", 1, "'dict object' has no attribute 'nope'")]
    [InlineData("{{ missing + 1 }}", 1, "'missing' is undefined")]
    [InlineData("{{ nope() }}", 1, "'nope' is undefined")]
    [InlineData("x\n{{ messages.startswith('x') }}", 2, "'list object' has no attribute 'startswith'")]
    [InlineData("{{ 1 < 'a' }}", 1, "'<' not supported")]
    [InlineData("{{ 1 // 0 }}", 1, "division or modulo by zero")]
    [InlineData("{% set x = 1 %}{% set x.a = 2 %}", 1, "non-namespace")]
    [InlineData("{% for a, b in [[1, 2, 3]] %}{% endfor %}", 1, "too many values to unpack")]
    [InlineData("{{ {'a': 1} | tojson }}{{ missing | tojson }}", 1, "not JSON serializable")]
    [InlineData("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}", 1, "recursed deeper")]
    [InlineData("{{ 'abc' * 100000000 }}", 1, "too large")]
    public void RenderErrorsSayWhatAndWhere(string template, int line, string message)
    {
        var error = Fails(template);
        Assert.Equal(ChatTemplateErrorKind.Render, error.Kind);
        Assert.Equal(line, error.Line);
        Assert.Contains(message, error.Detail);
    }

    // ---- undefined ----

    [Theory]
    [InlineData("[{{ missing }}]", "[]")]
    [InlineData("{% if missing %}y{% else %}n{% endif %}", "n")]
    [InlineData("{{ missing is defined }}{{ missing is undefined }}", "FalseTrue")]
    [InlineData("{% for x in missing %}x{% else %}empty{% endfor %}", "empty")]
    [InlineData("{{ missing | default('d') }}|{{ missing | length }}|{{ missing ~ 'z' }}", "d|0|z")]
    [InlineData("[{{ none.x }}][{{ messages[0].nope }}][{{ messages[9] }}][{{ 'abc'.nope }}]", "[][][][]")]
    [InlineData("{{ messages[0].nope is defined }}|{{ (messages[0].nope or 'fallback') }}", "False|fallback")]
    [InlineData("[{{ 'y' if false }}]", "[]")]
    public void UndefinedRendersEmptyAndIsFalsy(string template, string expected) => Assert.Equal(expected, Render(template));

    // ---- whitespace control (transformers: trim_blocks and lstrip_blocks) ----

    [Theory]
    [InlineData("{% if true %}\nyes\n{% endif %}\nafter", "yes\nafter")]
    [InlineData("start\n    {% if true %}\n  yes\n    {% endif %}\nend", "start\n  yes\nend")]
    [InlineData("a  \n {%- if true -%}  \n b  {%- endif -%}  \n c", "abc")]
    [InlineData("a  \n  {{- ' x ' -}}  \n  b", "a x b")]
    [InlineData("  {{ 'x' }}  \n{{ 'y' }}\n", "  x  \ny")]
    [InlineData("{# note #}\nafter", "after")]
    [InlineData("x {#- c -#} y", "xy")]
    [InlineData("  {%+ if true +%}\nkept{% endif %}|", "  \nkept|")]
    [InlineData("x  {% if true %}y{% endif %}  z", "x  y  z")]
    [InlineData("line1\r\n{% if true %}\r\nline2\r\n{% endif %}\r\n", "line1\nline2\n")]
    [InlineData("x\n\n", "x\n")]
    [InlineData("{% raw %}{{ kept }}{% endraw %}", "{{ kept }}")]
    [InlineData("{%- for m in messages %}\n    {{- m.role }}\n{%- endfor %}", "systemuser")]
    public void WhitespaceControl(string template, string expected) => Assert.Equal(expected, Render(template));

    // ---- filters, tests and methods (every reference snippet covers them against jinja2; these pin a few directly) ----

    [Theory]
    [InlineData("{{ ' a ' | trim }}|{{ 'Ab' | upper }}{{ 'Ab' | lower }}|{{ 'hELLO' | capitalize }}", "a|ABab|Hello")]
    [InlineData("{{ messages | length }}|{{ 'abc' | length }}|{{ messages | first | tojson }}|{{ [1, 2] | last }}", "2|3|{\"role\": \"system\", \"content\": \"Be brief.\"}|2")]
    [InlineData("{{ {'a': [1, 'x']} | tojson(indent=2) }}", "{\n  \"a\": [\n    1,\n    \"x\"\n  ]\n}")]
    [InlineData("{{ {'b': 1, 'a': '中'} | tojson(sort_keys=true) }}", "{\"a\": \"中\", \"b\": 1}")]
    [InlineData("{{ 5 | string }}{{ '12' | int + 1 }}|{{ ['a', 'b'] | join('-') }}|{{ {'k': 1} | items | list }}", "513|a-b|[('k', 1)]")]
    [InlineData("{{ 'a-b' | replace('-', '+') }}|{{ 'ab' | list }}|{{ '<x>' | safe }}", "a+b|['a', 'b']|<x>")]
    [InlineData("{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | join }}|{{ messages | rejectattr('role', 'equalto', 'user') | map(attribute='role') | first }}", "Hi|system")]
    [InlineData("{{ 'abc'.startswith('a') }}{{ 'abc'.endswith('c') }}|{{ ' x '.strip() }}|{{ 'xxaxx'.lstrip('x') }}|{{ 'xxaxx'.rstrip('x') }}", "TrueTrue|x|axx|xxa")]
    [InlineData("{{ 'a,b'.split(',') }}|{{ 'Ab'.upper() }}{{ 'Ab'.lower() }}|{{ 'a-a'.replace('a', 'b') }}|{{ 'big cat'.title() }}", "['a', 'b']|ABab|b-b|Big Cat")]
    [InlineData("{% set d = {'a': 1} %}{{ d.get('a') }}{{ d.get('z', 0) }}|{% for k, v in d.items() %}{{ k }}{{ v }}{% endfor %}|{{ d.keys() | list }}{{ d.values() | list }}", "10|a1|['a'][1]")]
    [InlineData("{{ 1 is odd }}{{ 'x' is string }}{{ {} is mapping }}{{ [] is iterable }}{{ none is none }}{{ 3 is divisibleby 3 }}", "TrueTrueTrueTrueTrueTrue")]
    public void FiltersTestsAndMethods(string template, string expected) => Assert.Equal(expected, Render(template));

    [Fact]
    public void ForLoopVariablesAndNamespace()
    {
        var template = "{% set ns = namespace(n=0) %}{% for m in messages[::-1] %}{% set ns.n = ns.n + loop.index %}" +
                       "{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}{{ loop.previtem.role if not loop.first }}{{ loop.nextitem.role if not loop.last }};{% endfor %}{{ ns.n }}";
        Assert.Equal("0TrueFalse2system;1FalseTrue2user;3", Render(template));
    }

    [Fact]
    public void MacrosAndGenerationBlocks()
    {
        Assert.Equal("[Hi!][Yo?]", Render("{% macro w(t, p='!') %}[{{ t }}{{ p }}]{% endmacro %}{{ w('Hi') }}{{ w(t='Yo', p='?') }}"));
        Assert.Equal("a-gen-b", Render("a-{% generation %}gen{% endgeneration %}-b"));
    }

    [Fact]
    public void StrftimeNowUsesTheClock()
    {
        var template = ChatTemplate.Parse("{{ strftime_now('%d %B %Y') }}|{{ strftime_now('%Y-%m-%d %H:%M:%S %a %b %j %p %I %-d') }}");
        template.Now = () => new DateTime(2024, 7, 4, 15, 5, 9);
        Assert.Equal("04 July 2024|2024-07-04 15:05:09 Thu Jul 186 PM 03 4", template.Render(Conversation, false));
    }

    // ---- inputs ----

    [Fact]
    public void MessagesBecomeDictsWithOnlyTheFieldsSet()
    {
        ChatMessage[] messages =
        [
            new("user", "hi") { Name = "ann" },
            new("assistant", null) { ToolCalls = [new ChatToolCall("c1", "f", "{\"x\": 1}")] },
            new("tool", "42") { ToolCallId = "c1", AdditionalFields = new Dictionary<string, object?> { ["extra"] = 7 } },
            new("user", null) { ContentParts = [ChatContentPart.FromText("a"), ChatContentPart.FromText("b")] },
        ];
        Assert.Equal(
            "{\"role\": \"user\", \"content\": \"hi\", \"name\": \"ann\"}\n" +
            "{\"role\": \"assistant\", \"content\": null, \"tool_calls\": [{\"id\": \"c1\", \"type\": \"function\", \"function\": {\"name\": \"f\", \"arguments\": \"{\\\"x\\\": 1}\"}}]}\n" +
            "{\"role\": \"tool\", \"content\": \"42\", \"tool_call_id\": \"c1\", \"extra\": 7}\n" +
            "{\"role\": \"user\", \"content\": [{\"type\": \"text\", \"text\": \"a\"}, {\"type\": \"text\", \"text\": \"b\"}]}\n" +
            "None",
            Render("{% for m in messages %}{{ m | tojson }}\n{% endfor %}{{ messages[1].content }}", messages: messages));
    }

    [Fact]
    public void ExtraVariablesAcceptDotNetAndJsonValues()
    {
        var extra = new Dictionary<string, object?>
        {
            ["tools"] = JsonNode.Parse("[{\"name\": \"t\", \"n\": 1.5, \"i\": 2}]"),
            ["documents"] = new List<object> { new Dictionary<string, object?> { ["title"] = "d", ["n"] = 3 } },
            ["flag"] = true,
            ["count"] = 3,
            ["element"] = JsonDocument.Parse("{\"a\": [1, 2.0, null]}").RootElement.Clone(),
        };
        Assert.Equal("t 1.5 2|d 3|True 4|{\"a\": [1, 2.0, null]}",
            Render("{{ tools[0].name }} {{ tools[0].n }} {{ tools[0].i }}|{{ documents[0].title }} {{ documents[0].n }}|{{ flag }} {{ count + 1 }}|{{ element | tojson }}", extra));
        Assert.Equal("True|True|True", Render("{{ tools is none }}|{{ documents is none }}|{{ add_generation_prompt }}"));
    }

    // ---- the tokenizer side ----

    [Fact]
    public void TokenizerWithoutTemplateGivesAClearError()
    {
        var error = Assert.Throws<ChatTemplateException>(() => TestData.Vocabulary("llama2").ApplyChatTemplate(Conversation, true));
        Assert.Equal(ChatTemplateErrorKind.Missing, error.Kind);
        Assert.Contains("no chat template", error.Message);
    }

    [Fact]
    public void NamedTemplatesAreChosenAsTransformersDoesAndParsedOnce()
    {
        var dir = Directory.CreateTempSubdirectory("turbine-chat-");
        try
        {
            File.Copy(Path.Combine(TestData.TinyModelDirectories().First(), "tokenizer.json"), Path.Combine(dir.FullName, "tokenizer.json"));
            File.WriteAllText(Path.Combine(dir.FullName, "tokenizer_config.json"), JsonSerializer.Serialize(new
            {
                bos_token = "<s>",
                eos_token = "</s>",
                chat_template = new[]
                {
                    new { name = "default", template = "default {{ bos_token }}{{ messages | length }}" },
                    new { name = "tool_use", template = "tools {{ tools | length }}{{ eos_token }}" },
                    new { name = "rag", template = "rag {{ documents[0] }}" },
                },
            }));
            var tokenizer = Tokenizer.FromDirectory(dir.FullName);
            Assert.Equal("default <s>2", tokenizer.ApplyChatTemplate(Conversation, true));
            Assert.Equal("tools 1</s>", tokenizer.ApplyChatTemplate(Conversation, true, extra: new Dictionary<string, object?> { ["tools"] = new[] { "t" } }));
            Assert.Equal("rag d", tokenizer.ApplyChatTemplate(Conversation, true, "rag", new Dictionary<string, object?> { ["documents"] = new[] { "d" } }));
            Assert.Same(tokenizer.GetChatTemplate("rag"), tokenizer.GetChatTemplate("rag"));
            var error = Assert.Throws<ChatTemplateException>(() => tokenizer.ApplyChatTemplate(Conversation, true, "nope"));
            Assert.Equal(ChatTemplateErrorKind.Missing, error.Kind);
            Assert.Contains("default, tool_use, rag", error.Message);
        }
        finally
        {
            dir.Delete(recursive: true);
        }
    }

    [Fact]
    public void RendersConcurrently()
    {
        var fixture = ChatFixtures.Load("qwen3");
        var template = ChatTemplate.Parse(fixture.Template, fixture.SpecialTokens());
        var c = fixture.Cases.Single(x => x.Name == "tool_call");
        Parallel.For(0, 64, _ => Assert.Equal(c.Expected, template.Render(c.Messages, c.AddGenerationPrompt, c.Extra)));
    }
}
