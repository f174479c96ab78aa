using Turbine.Tokenizers.ChatTemplates;

namespace Turbine.Tokenizers.Tests.ChatTemplates;

/// <summary>Every template × conversation renders byte for byte as transformers' apply_chat_template, or fails where it fails.</summary>
public sealed class ReferenceRenderTests
{
    [Theory]
    [MemberData(nameof(ChatFixtures.AllTemplateCases), MemberType = typeof(ChatFixtures))]
    public void TemplateCaseMatchesTransformers(string template, string caseName)
    {
        var fixture = ChatFixtures.Load(template);
        var c = fixture.Cases.Single(x => x.Name == caseName);
        var parsed = ChatTemplate.Parse(fixture.Template, fixture.SpecialTokens());
        AssertRender(c, () => parsed.Render(c.Messages, c.AddGenerationPrompt, c.Extra));
    }

    [Theory]
    [MemberData(nameof(ChatFixtures.AllSnippets), MemberType = typeof(ChatFixtures))]
    public void SnippetMatchesTransformers(string snippet)
    {
        var fixture = ChatFixtures.Load("snippets");
        var c = fixture.Cases.Single(x => x.Name == snippet);
        AssertRender(c, () => ChatTemplate.Parse(c.Template!, fixture.SpecialTokens()).Render(c.Messages, c.AddGenerationPrompt, c.Extra));
    }

    [Theory]
    [InlineData("llama3")]
    [InlineData("qwen3")]
    public void RealTokenizerRendersLikeTheFixture(string vocabulary)
    {
        var tokenizer = TestData.Vocabulary(vocabulary);
        var fixture = ChatFixtures.Load(vocabulary);
        Assert.Equal(fixture.Template, tokenizer.ChatTemplate);
        foreach (var c in fixture.Cases)
            AssertRender(c, () => tokenizer.ApplyChatTemplate(c.Messages, c.AddGenerationPrompt, extra: c.Extra));
    }

    [Fact]
    public void DemoModelRendersLikeTheFixture()
    {
        var tokenizer = Tokenizer.FromDirectory(Path.Combine(TestData.RepoRoot, "models", "demo"));
        var fixture = ChatFixtures.Load("demo");
        Assert.Equal(fixture.Template, tokenizer.ChatTemplate);
        foreach (var c in fixture.Cases)
            AssertRender(c, () => tokenizer.ApplyChatTemplate(c.Messages, c.AddGenerationPrompt, extra: c.Extra));
    }

    private static void AssertRender(ChatFixtures.Case c, Func<string> render)
    {
        if (c.Expected is not null)
        {
            string actual;
            try
            {
                actual = render();
            }
            catch (ChatTemplateException e)
            {
                Assert.Fail($"{c.Name}: expected {ChatFixtures.Show(c.Expected)}, got {e.Kind} error: {e.Message}");
                return;
            }
            Assert.True(c.Expected == actual, $"{c.Name}:\nexpected {ChatFixtures.Show(c.Expected)}\nactual   {ChatFixtures.Show(actual)}");
            return;
        }
        var error = Assert.Throws<ChatTemplateException>(() => render());
        var expectedKind = c.ErrorType switch
        {
            "TemplateSyntaxError" => ChatTemplateErrorKind.Syntax,
            "TemplateError" => ChatTemplateErrorKind.Raised,
            _ => ChatTemplateErrorKind.Render,
        };
        Assert.True(expectedKind == error.Kind, $"{c.Name}: expected a {expectedKind} error like {c.ErrorType}: {c.Error}, got {error.Kind}: {error.Message}");
        if (expectedKind == ChatTemplateErrorKind.Raised) Assert.Equal(c.Error, error.Detail);
    }
}
