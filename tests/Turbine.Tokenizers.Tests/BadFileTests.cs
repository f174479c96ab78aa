namespace Turbine.Tokenizers.Tests;

/// <summary>Malformed or unsupported files give one TokenizerFormatException naming the file and the problem.</summary>
public sealed class BadFileTests
{
    private static TokenizerFormatException LoadFails(string tokenizerJson, string? configJson = null)
    {
        var dir = Directory.CreateTempSubdirectory("turbine-bad-").FullName;
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), tokenizerJson);
        if (configJson is not null) File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), configJson);
        return Assert.Throws<TokenizerFormatException>(() => Tokenizer.FromDirectory(dir));
    }

    private const string MinimalModel = """ "model": { "type": "BPE", "vocab": { "a": 0, "b": 1, "ab": 2 }, "merges": ["a b"] } """;

    [Fact]
    public void MissingTokenizerJson_NamesTheMissingFile()
    {
        var dir = Directory.CreateTempSubdirectory("turbine-empty-").FullName;
        var error = Assert.Throws<TokenizerFormatException>(() => Tokenizer.FromDirectory(dir));
        Assert.Equal(Path.Combine(dir, "tokenizer.json"), error.FilePath);
        Assert.Contains("does not exist", error.Message);
    }

    [Fact]
    public void InvalidJson_SaysSo()
    {
        var error = LoadFails("{ \"model\": ");
        Assert.EndsWith("tokenizer.json", error.FilePath);
        Assert.Contains("is not valid JSON", error.Message);
    }

    [Fact]
    public void MissingModel_SaysWhichPropertyIsMissing() => Assert.Contains("has no \"model\"", LoadFails("{}").Message);

    [Fact]
    public void UnsupportedModelType_IsNamed() =>
        Assert.Contains("model type \"WordPiece\" is not supported", LoadFails("""{ "model": { "type": "WordPiece", "vocab": {} } }""").Message);

    [Fact]
    public void UnsupportedNormalizer_IsNamed() =>
        Assert.Contains("normalizer type \"Precompiled\" is not supported",
            LoadFails($$"""{ "normalizer": { "type": "Precompiled" }, {{MinimalModel}} }""").Message);

    [Fact]
    public void UnknownSplitBehavior_IsNamed() =>
        Assert.Contains("behavior \"Sideways\"",
            LoadFails($$"""{ "pre_tokenizer": { "type": "Split", "pattern": { "String": " " }, "behavior": "Sideways" }, {{MinimalModel}} }""").Message);

    [Fact]
    public void MergeOfUnknownToken_IsReported() =>
        Assert.Contains("model.merges[0]", LoadFails("""{ "model": { "type": "BPE", "vocab": { "a": 0 }, "merges": ["a z"] } }""").Message);

    [Fact]
    public void MalformedMerge_IsReported() =>
        Assert.Contains("must be \"left right\"", LoadFails("""{ "model": { "type": "BPE", "vocab": { "a": 0 }, "merges": ["abc"] } }""").Message);

    [Fact]
    public void VocabularyWithNonIntegerId_IsReported() =>
        Assert.Contains("model.vocab[\"a\"] must be an integer id", LoadFails("""{ "model": { "type": "BPE", "vocab": { "a": "zero" } } }""").Message);

    [Fact]
    public void InvalidRegex_IsReported() =>
        Assert.Contains("invalid regular expression",
            LoadFails($$"""{ "pre_tokenizer": { "type": "Split", "pattern": { "Regex": "(" }, "behavior": "Isolated" }, {{MinimalModel}} }""").Message);

    [Fact]
    public void ConfigWithUnknownBosToken_NamesTheConfigFile()
    {
        var error = LoadFails($$"""{ {{MinimalModel}} }""", """{ "bos_token": "<s>" }""");
        Assert.EndsWith("tokenizer_config.json", error.FilePath);
        Assert.Contains("bos_token \"<s>\" is not in the vocabulary", error.Message);
    }

    [Fact]
    public void ConfigWithMalformedChatTemplate_IsReported() =>
        Assert.Contains("chat_template must be a string or an array",
            LoadFails($$"""{ {{MinimalModel}} }""", """{ "chat_template": 3 }""").Message);
}
