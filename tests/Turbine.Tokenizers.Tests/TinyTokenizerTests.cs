namespace Turbine.Tokenizers.Tests;

/// <summary>The tiny byte-level BPE (vocab 1024) of the model fixtures against their reference prompt ids.</summary>
public sealed class TinyTokenizerTests
{
    public static TheoryData<string> ModelDirectories() => [.. TestData.TinyModelDirectories().Select(dir => Path.GetFileName(dir))];

    [Theory]
    [MemberData(nameof(ModelDirectories))]
    public void Encode_WithSpecialTokens_MatchesEveryReferencePromptIds(string model)
    {
        var dir = Path.Combine(TestData.RepoRoot, "tests", "fixtures", "models", model);
        var tokenizer = Tokenizer.FromDirectory(dir);
        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "reference.json")));
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            var prompt = c.GetProperty("prompt").GetString()!;
            var expected = c.GetProperty("prompt_ids").EnumerateArray().Select(x => x.GetInt32()).ToArray();
            Assert.Equal(expected, tokenizer.Encode(prompt, addSpecialTokens: true));
            Assert.Equal(prompt, tokenizer.Decode(expected, skipSpecialTokens: true));
            Assert.Equal("<s>" + prompt, tokenizer.Decode(expected, skipSpecialTokens: false));
        }
    }

    [Fact]
    public void Config_ReadsSpecialTokenIdsAndMaxLength()
    {
        var tokenizer = TestData.Tiny();
        Assert.Equal(0, tokenizer.BosTokenId);
        Assert.Equal(1, tokenizer.EosTokenId);
        Assert.Equal(2, tokenizer.PadTokenId);
        Assert.Equal(256, tokenizer.Config.ModelMaxLength);
        Assert.Equal(1024, tokenizer.VocabSize);
        Assert.Equal("<s>", tokenizer.IdToToken(0));
        Assert.Equal(0, tokenizer.TokenToId("<s>"));
        Assert.Null(tokenizer.TokenToId("no such token"));
    }
}
