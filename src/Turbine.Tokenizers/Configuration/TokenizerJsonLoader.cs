using System.Text;
using System.Text.Json;
using Turbine.Tokenizers.AddedTokens;
using Turbine.Tokenizers.Decoders;
using Turbine.Tokenizers.Models;
using Turbine.Tokenizers.Normalizers;
using Turbine.Tokenizers.PostProcessors;
using Turbine.Tokenizers.PreTokenizers;

namespace Turbine.Tokenizers.Configuration;

/// <summary>The components a tokenizer.json describes.</summary>
internal sealed record TokenizerPipeline(
    INormalizer? Normalizer, IPreTokenizer? PreTokenizer, BpeModel Model, IPostProcessor? PostProcessor, IDecoder? Decoder,
    IReadOnlyList<AddedToken> AddedTokens);

/// <summary>Reads a Hugging Face tokenizer.json into a <see cref="TokenizerPipeline"/>.</summary>
internal static class TokenizerJsonLoader
{
    public static TokenizerPipeline Load(string path)
    {
        using var document = JsonReading.Parse(path);
        var json = new JsonReading(path);
        var root = document.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw json.Error("the top level must be a JSON object");
        var model = ReadModel(json, json.Required(root, "model", "the tokenizer"));
        var normalizer = JsonReading.Optional(root, "normalizer") is { } n ? ReadNormalizer(json, n, "normalizer") : null;
        var preTokenizer = JsonReading.Optional(root, "pre_tokenizer") is { } p ? ReadPreTokenizer(json, p, "pre_tokenizer") : null;
        var addedTokens = ReadAddedTokens(json, root);
        var postProcessor = JsonReading.Optional(root, "post_processor") is { } pp ? ReadPostProcessor(json, pp, "post_processor", model, addedTokens) : null;
        var decoder = JsonReading.Optional(root, "decoder") is { } d ? ReadDecoder(json, d, "decoder") : null;
        return new TokenizerPipeline(normalizer, preTokenizer, model, postProcessor, decoder, addedTokens);
    }

    private static string TypeOf(JsonReading json, JsonElement element, string context) => json.RequiredString(element, "type", context);

    private static JsonElement[] Items(JsonReading json, JsonElement obj, string name, string context)
    {
        var array = json.Required(obj, name, context);
        if (array.ValueKind != JsonValueKind.Array) throw json.Error($"{context}: \"{name}\" must be an array");
        return [.. array.EnumerateArray()];
    }

    private static BpeModel ReadModel(JsonReading json, JsonElement model)
    {
        var type = json.OptionalString(model, "type", "model") ?? "BPE";
        if (type != "BPE") throw json.Error($"model type \"{type}\" is not supported (only BPE)");
        var vocabElement = json.Required(model, "vocab", "model");
        if (vocabElement.ValueKind != JsonValueKind.Object) throw json.Error("model.vocab must be an object of token → id");
        var vocab = new Dictionary<string, int>();
        foreach (var entry in vocabElement.EnumerateObject())
        {
            if (entry.Value.ValueKind != JsonValueKind.Number || !entry.Value.TryGetInt32(out var id))
                throw json.Error($"model.vocab[\"{entry.Name}\"] must be an integer id");
            vocab[entry.Name] = id;
        }
        var merges = new List<(string, string)>();
        if (JsonReading.Optional(model, "merges") is { } mergesElement)
        {
            if (mergesElement.ValueKind != JsonValueKind.Array) throw json.Error("model.merges must be an array");
            var index = 0;
            foreach (var merge in mergesElement.EnumerateArray())
            {
                merges.Add(ReadMerge(json, merge, index));
                index++;
            }
        }
        return new BpeModel(vocab, merges,
            json.OptionalString(model, "unk_token", "model"),
            json.OptionalString(model, "continuing_subword_prefix", "model"),
            json.OptionalString(model, "end_of_word_suffix", "model"),
            json.Bool(model, "fuse_unk", false, "model"),
            json.Bool(model, "byte_fallback", false, "model"),
            json.Bool(model, "ignore_merges", false, "model"),
            json.Error);
    }

    private static (string, string) ReadMerge(JsonReading json, JsonElement merge, int index)
    {
        if (merge.ValueKind == JsonValueKind.String)
        {
            var text = merge.GetString()!;
            var space = text.IndexOf(' ');
            if (space > 0 && space < text.Length - 1 && text.IndexOf(' ', space + 1) < 0) return (text[..space], text[(space + 1)..]);
        }
        else if (merge.ValueKind == JsonValueKind.Array && merge.GetArrayLength() == 2
                 && merge[0].ValueKind == JsonValueKind.String && merge[1].ValueKind == JsonValueKind.String)
        {
            return (merge[0].GetString()!, merge[1].GetString()!);
        }
        throw json.Error($"model.merges[{index}] must be \"left right\" or [\"left\", \"right\"]");
    }

    private static ISplitPattern ReadPattern(JsonReading json, JsonElement element, string context)
    {
        var pattern = json.Required(element, "pattern", context);
        var literal = json.OptionalString(pattern, "String", context + ".pattern");
        var regex = json.OptionalString(pattern, "Regex", context + ".pattern");
        if (literal is null && regex is null) throw json.Error($"{context}.pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}");
        try
        {
            return ISplitPattern.Create(literal, regex);
        }
        catch (ArgumentException e)
        {
            throw new TokenizerFormatException(json.Path, $"{context}.pattern: invalid regular expression ({e.Message})", e);
        }
    }

    private static INormalizer ReadNormalizer(JsonReading json, JsonElement element, string context)
    {
        var type = TypeOf(json, element, context);
        return type switch
        {
            "NFC" => new UnicodeFormNormalizer(NormalizationForm.FormC),
            "NFD" => new UnicodeFormNormalizer(NormalizationForm.FormD),
            "NFKC" => new UnicodeFormNormalizer(NormalizationForm.FormKC),
            "NFKD" => new UnicodeFormNormalizer(NormalizationForm.FormKD),
            "Lowercase" => new LowercaseNormalizer(),
            "StripAccents" => new StripAccentsNormalizer(),
            "Prepend" => new PrependNormalizer(json.RequiredString(element, "prepend", context)),
            "Replace" => new ReplaceNormalizer(ReadPattern(json, element, context), json.RequiredString(element, "content", context)),
            "Strip" => new StripNormalizer(json.Bool(element, "strip_left", true, context), json.Bool(element, "strip_right", true, context)),
            "Sequence" => new SequenceNormalizer(Array.ConvertAll(Items(json, element, "normalizers", context),
                item => ReadNormalizer(json, item, context + ".normalizers[]"))),
            _ => throw json.Error($"{context}: normalizer type \"{type}\" is not supported"),
        };
    }

    private static SplitBehavior ReadBehavior(JsonReading json, JsonElement element, string context)
    {
        var behavior = json.RequiredString(element, "behavior", context);
        return Enum.TryParse<SplitBehavior>(behavior, out var parsed)
            ? parsed
            : throw json.Error($"{context}: behavior \"{behavior}\" is not one of Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
    }

    private static char ReadReplacementChar(JsonReading json, JsonElement element, string context)
    {
        var replacement = json.OptionalString(element, "replacement", context) ?? "\u2581";
        return replacement.Length == 1 ? replacement[0] : throw json.Error($"{context}: replacement must be one character");
    }

    private static string ReadPrependScheme(JsonReading json, JsonElement element, string context)
    {
        var scheme = json.OptionalString(element, "prepend_scheme", context);
        if (scheme is null) return json.Bool(element, "add_prefix_space", true, context) ? "always" : "never";
        return scheme is "always" or "first" or "never" ? scheme : throw json.Error($"{context}: prepend_scheme \"{scheme}\" is not always, first or never");
    }

    private static IPreTokenizer ReadPreTokenizer(JsonReading json, JsonElement element, string context)
    {
        var type = TypeOf(json, element, context);
        return type switch
        {
            "ByteLevel" => new ByteLevelPreTokenizer(json.Bool(element, "add_prefix_space", true, context), json.Bool(element, "use_regex", true, context)),
            "Split" => new SplitPreTokenizer(ReadPattern(json, element, context), ReadBehavior(json, element, context), json.Bool(element, "invert", false, context)),
            "Metaspace" => new MetaspacePreTokenizer(ReadReplacementChar(json, element, context), ReadPrependScheme(json, element, context),
                json.Bool(element, "split", true, context)),
            "Digits" => new DigitsPreTokenizer(json.Bool(element, "individual_digits", false, context)),
            "Whitespace" => new WhitespacePreTokenizer(splitOnWhitespaceOnly: false),
            "WhitespaceSplit" => new WhitespacePreTokenizer(splitOnWhitespaceOnly: true),
            "Sequence" => new SequencePreTokenizer(Array.ConvertAll(Items(json, element, "pretokenizers", context),
                item => ReadPreTokenizer(json, item, context + ".pretokenizers[]"))),
            _ => throw json.Error($"{context}: pre-tokenizer type \"{type}\" is not supported"),
        };
    }

    private static IDecoder ReadDecoder(JsonReading json, JsonElement element, string context)
    {
        var type = TypeOf(json, element, context);
        return type switch
        {
            "ByteLevel" => new ByteLevelDecoder(),
            "Replace" => new ReplaceDecoder(ReadPattern(json, element, context), json.RequiredString(element, "content", context)),
            "ByteFallback" => new ByteFallbackDecoder(),
            "Fuse" => new FuseDecoder(),
            "Strip" => new StripDecoder(ReadStripContent(json, element, context), json.Int(element, "start", 0, context), json.Int(element, "stop", 0, context)),
            "Metaspace" => new MetaspaceDecoder(ReadReplacementChar(json, element, context), ReadPrependScheme(json, element, context) != "never"),
            "Sequence" => new SequenceDecoder(Array.ConvertAll(Items(json, element, "decoders", context),
                item => ReadDecoder(json, item, context + ".decoders[]"))),
            _ => throw json.Error($"{context}: decoder type \"{type}\" is not supported"),
        };
    }

    private static char ReadStripContent(JsonReading json, JsonElement element, string context)
    {
        var content = json.RequiredString(element, "content", context);
        return content.Length == 1 ? content[0] : throw json.Error($"{context}: content must be one character");
    }

    private static IPostProcessor ReadPostProcessor(JsonReading json, JsonElement element, string context, BpeModel model, IReadOnlyList<AddedToken> added)
    {
        var type = TypeOf(json, element, context);
        switch (type)
        {
            case "ByteLevel":
                return new PassThroughProcessor();
            case "Sequence":
                return new SequenceProcessor(Array.ConvertAll(Items(json, element, "processors", context),
                    item => ReadPostProcessor(json, item, context + ".processors[]", model, added)));
            case "TemplateProcessing":
            {
                var specials = new Dictionary<string, int[]>();
                if (JsonReading.Optional(element, "special_tokens") is { } specialTokens)
                {
                    foreach (var entry in specialTokens.EnumerateObject())
                    {
                        var ids = Items(json, entry.Value, "ids", $"{context}.special_tokens[\"{entry.Name}\"]");
                        specials[entry.Name] = Array.ConvertAll(ids, id => id.ValueKind == JsonValueKind.Number && id.TryGetInt32(out var value)
                            ? value
                            : throw json.Error($"{context}.special_tokens[\"{entry.Name}\"].ids must be integers"));
                    }
                }
                return new TemplateProcessor(ReadTemplate(json, element, "single", context, specials),
                    ReadTemplate(json, element, "pair", context, specials));
            }
            default:
                throw json.Error($"{context}: post-processor type \"{type}\" is not supported");
        }
    }

    private static TemplatePiece[] ReadTemplate(JsonReading json, JsonElement element, string name, string context, Dictionary<string, int[]> specials)
    {
        if (JsonReading.Optional(element, name) is null) return [];
        return Array.ConvertAll(Items(json, element, name, context), item =>
        {
            if (JsonReading.Optional(item, "SpecialToken") is { } special)
            {
                var id = json.RequiredString(special, "id", $"{context}.{name}[].SpecialToken");
                return specials.TryGetValue(id, out var ids)
                    ? new TemplatePiece(ids, false)
                    : throw json.Error($"{context}.{name}: special token \"{id}\" is missing from special_tokens");
            }
            if (JsonReading.Optional(item, "Sequence") is { } sequence)
                return new TemplatePiece(null, json.RequiredString(sequence, "id", $"{context}.{name}[].Sequence") == "B");
            throw json.Error($"{context}.{name}: each item must be {{\"SpecialToken\": ...}} or {{\"Sequence\": ...}}");
        });
    }

    private static List<AddedToken> ReadAddedTokens(JsonReading json, JsonElement root)
    {
        var tokens = new List<AddedToken>();
        if (JsonReading.Optional(root, "added_tokens") is null) return tokens;
        foreach (var item in Items(json, root, "added_tokens", "the tokenizer"))
        {
            const string context = "added_tokens[]";
            var special = json.Bool(item, "special", false, context);
            var id = json.Required(item, "id", context);
            tokens.Add(new AddedToken(
                id.ValueKind == JsonValueKind.Number && id.TryGetInt32(out var value) ? value : throw json.Error("added_tokens[].id must be an integer"),
                json.RequiredString(item, "content", context),
                special,
                json.Bool(item, "lstrip", false, context),
                json.Bool(item, "rstrip", false, context),
                json.Bool(item, "normalized", !special, context),
                json.Bool(item, "single_word", false, context)));
        }
        return tokens;
    }
}
