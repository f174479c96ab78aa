using System.Text;
using Turbine.Tokenizers.Normalizers;
using Turbine.Tokenizers.PreTokenizers;

namespace Turbine.Tokenizers.Tests;

/// <summary>Components the three reference vocabularies do not exercise, checked against tokenizers' documented behaviour.</summary>
public sealed class ComponentTests
{
    private static string[] Split(string text, SplitBehavior behavior, bool invert = false)
    {
        var output = new PieceList();
        Splitter.Split(text, new LiteralPattern("-"), behavior, invert, output);
        return [.. Enumerable.Range(0, output.Count).Select(i => output[i].ToString())];
    }

    [Fact]
    public void SplitBehaviors_MatchTheTokenizersDocumentationExample()
    {
        const string text = "the-final--countdown";
        Assert.Equal(["the", "final", "countdown"], Split(text, SplitBehavior.Removed));
        Assert.Equal(["the", "-", "final", "-", "-", "countdown"], Split(text, SplitBehavior.Isolated));
        Assert.Equal(["the-", "final-", "-", "countdown"], Split(text, SplitBehavior.MergedWithPrevious));
        Assert.Equal(["the", "-final", "-", "-countdown"], Split(text, SplitBehavior.MergedWithNext));
        Assert.Equal(["the", "-", "final", "--", "countdown"], Split(text, SplitBehavior.Contiguous));
        Assert.Equal(["-", "-", "-"], Split(text, SplitBehavior.Removed, invert: true));
    }

    [Fact]
    public void UnicodeNormalization_ComposesDecomposesAndAppliesCompatibilityMappings()
    {
        Assert.Equal("\u00e9", UnicodeNormalization.Normalize("e\u0301", NormalizationForm.FormC));
        Assert.Equal("e\u0301", UnicodeNormalization.Normalize("\u00e9", NormalizationForm.FormD));
        Assert.Equal("fi ABC123", UnicodeNormalization.Normalize("\uFB01 ＡＢＣ１２３", NormalizationForm.FormKC));
        Assert.Equal("\uAC00", UnicodeNormalization.Normalize("\u1100\u1161", NormalizationForm.FormC));
        Assert.Equal("\u1100\u1161\u11A8", UnicodeNormalization.Normalize("\uAC01", NormalizationForm.FormD));
        // Canonical reordering: dot below (220) sorts before dot above (230), then composes with the base.
        Assert.Equal("\u1E69", UnicodeNormalization.Normalize("s\u0307\u0323", NormalizationForm.FormC));
        Assert.Equal("\U0001F600 unchanged", UnicodeNormalization.Normalize("\U0001F600 unchanged", NormalizationForm.FormC));
    }

    /// <summary>A tokenizer.json with a character-level vocabulary and the given components, written to a temp folder.</summary>
    internal static Tokenizer Build(string components, string vocabChars, string merges = "[]", string addedTokens = "[]", string? config = null)
    {
        var vocab = new StringBuilder("{\"<unk>\": 0");
        var id = 1;
        foreach (var rune in vocabChars.EnumerateRunes())
            vocab.Append(", ").Append(System.Text.Json.JsonSerializer.Serialize(rune.ToString())).Append(": ").Append(id++);
        var mergeTokens = System.Text.Json.JsonDocument.Parse(merges).RootElement.EnumerateArray().Select(m => m.GetString()!.Replace(" ", ""));
        foreach (var merged in mergeTokens.Distinct()) vocab.Append(", ").Append(System.Text.Json.JsonSerializer.Serialize(merged)).Append(": ").Append(id++);
        vocab.Append('}');
        var dir = Directory.CreateTempSubdirectory("turbine-tok-").FullName;
        File.WriteAllText(Path.Combine(dir, "tokenizer.json"), $$"""
            { "version": "1.0", "added_tokens": {{addedTokens}}, {{components}},
              "model": { "type": "BPE", "unk_token": "<unk>", "fuse_unk": true, "vocab": {{vocab}}, "merges": {{merges}} } }
            """);
        if (config is not null) File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), config);
        return Tokenizer.FromDirectory(dir);
    }

    private static string Tokens(Tokenizer tokenizer, string text, bool addSpecialTokens = false) =>
        string.Join("|", tokenizer.Encode(text, addSpecialTokens).Select(i => tokenizer.IdToToken(i)));

    [Fact]
    public void Metaspace_ReplacesSpacesPrependsAndSplitsBeforeEachReplacement_AndDecodesBack()
    {
        var tokenizer = Build("""
            "normalizer": null,
            "pre_tokenizer": { "type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true },
            "decoder": { "type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true }
            """, "▁hewold", merges: """["▁ h", "▁h e"]""");
        Assert.Equal("▁he|w|o|l|l|o|▁|w|o|l|d", Tokens(tokenizer, "hewollo wold"));
        Assert.Equal("hewollo wold", tokenizer.Decode(tokenizer.Encode("hewollo wold", false), false));
    }

    [Fact]
    public void UnknownChars_FuseIntoOneUnkToken()
    {
        var tokenizer = Build("\"normalizer\": null, \"pre_tokenizer\": null, \"decoder\": null", "ab");
        Assert.Equal("a|<unk>|b", Tokens(tokenizer, "axyzb"));
    }

    [Fact]
    public void DigitsAndWhitespace_PreTokenizersSplitAsDocumented()
    {
        var tokenizer = Build("""
            "normalizer": { "type": "Sequence", "normalizers": [ { "type": "NFKC" }, { "type": "Lowercase" }, { "type": "Strip", "strip_left": true, "strip_right": true } ] },
            "pre_tokenizer": { "type": "Sequence", "pretokenizers": [ { "type": "WhitespaceSplit" }, { "type": "Digits", "individual_digits": true } ] },
            "decoder": null
            """, "abc123", merges: """["a b", "ab c"]""");
        Assert.Equal("abc|1|2|3|abc", Tokens(tokenizer, "  ＡBc123 \t ABC  "));
    }

    [Fact]
    public void AddedTokens_HonourLstripRstripSingleWordAndPreferTheLongestMatch()
    {
        var tokenizer = Build("\"normalizer\": null, \"pre_tokenizer\": null, \"decoder\": null", "ab <>",
            addedTokens: """
            [ { "id": 100, "content": "<a>", "special": true, "lstrip": true, "rstrip": true, "normalized": false, "single_word": false },
              { "id": 101, "content": "<a>b", "special": true, "lstrip": false, "rstrip": false, "normalized": false, "single_word": false },
              { "id": 102, "content": "ab", "special": false, "lstrip": false, "rstrip": false, "normalized": false, "single_word": true } ]
            """);
        Assert.Equal("a|<a>|b", Tokens(tokenizer, "a  <a>  b"));
        Assert.Equal("<a>b", Tokens(tokenizer, "<a>b"));
        Assert.Equal("ab| |a|b|a|b", Tokens(tokenizer, "ab abab"));
        Assert.Equal("ab", tokenizer.Decode([100, 102], skipSpecialTokens: true));
    }

    [Fact]
    public void TemplateProcessing_AddsSpecialTokensForSingleAndPair()
    {
        var tokenizer = Build("""
            "normalizer": null, "pre_tokenizer": null, "decoder": null,
            "post_processor": { "type": "TemplateProcessing",
              "single": [ { "SpecialToken": { "id": "<s>", "type_id": 0 } }, { "Sequence": { "id": "A", "type_id": 0 } } ],
              "pair": [ { "SpecialToken": { "id": "<s>", "type_id": 0 } }, { "Sequence": { "id": "A", "type_id": 0 } },
                        { "SpecialToken": { "id": "</s>", "type_id": 0 } }, { "Sequence": { "id": "B", "type_id": 1 } } ],
              "special_tokens": { "<s>": { "id": "<s>", "ids": [50], "tokens": ["<s>"] }, "</s>": { "id": "</s>", "ids": [51], "tokens": ["</s>"] } } }
            """, "ab",
            addedTokens: """
            [ { "id": 50, "content": "<s>", "special": true, "normalized": false },
              { "id": 51, "content": "</s>", "special": true, "normalized": false } ]
            """,
            config: """
            { "bos_token": { "content": "<s>", "lstrip": false }, "eos_token": "</s>", "add_bos_token": true, "model_max_length": 1e30,
              "chat_template": [ { "name": "default", "template": "{{ x }}" }, { "name": "tool_use", "template": "{{ y }}" } ] }
            """);
        Assert.Equal([50, 1], tokenizer.Encode("a", addSpecialTokens: true));
        Assert.Equal([1], tokenizer.Encode("a", addSpecialTokens: false));
        Assert.Equal([50, 1, 51, 2], tokenizer.EncodePair("a", "b", addSpecialTokens: true));
        Assert.Equal(50, tokenizer.BosTokenId);
        Assert.Equal(51, tokenizer.EosTokenId);
        Assert.Null(tokenizer.PadTokenId);
        Assert.True(tokenizer.Config.AddBosToken);
        Assert.Equal(long.MaxValue, tokenizer.Config.ModelMaxLength);
        Assert.Equal("{{ x }}", tokenizer.ChatTemplate);
        Assert.Equal("{{ y }}", tokenizer.Config.ChatTemplates["tool_use"]);
    }

    [Fact]
    public void Llama3Config_KeepsTheChatTemplateAsAString()
    {
        var tokenizer = TestData.Vocabulary("llama3");
        Assert.StartsWith("{% set loop_messages = messages %}", tokenizer.ChatTemplate);
        Assert.Equal(128000, tokenizer.BosTokenId);
        Assert.Equal(128001, tokenizer.EosTokenId);
        Assert.Equal(128256, tokenizer.VocabSize);
    }

    [Fact]
    public void IncrementalDecoder_HoldsBackPartialByteFallbackCharacters()
    {
        var tokenizer = TestData.Vocabulary("llama2");
        var ids = tokenizer.Encode("a😀b", addSpecialTokens: true);
        var decoder = tokenizer.CreateIncrementalDecoder(skipSpecialTokens: true);
        var deltas = ids.Select(decoder.Push).ToList();
        Assert.All(deltas, delta => Assert.DoesNotContain('\uFFFD', delta));
        Assert.Contains("😀", deltas);
        Assert.Equal("a😀b", string.Concat(deltas) + decoder.Flush());
    }
}
