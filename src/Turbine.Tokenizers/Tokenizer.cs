using System.Runtime.InteropServices;
using Turbine.Tokenizers.AddedTokens;
using Turbine.Tokenizers.ChatTemplates;
using Turbine.Tokenizers.Configuration;
using Turbine.Tokenizers.Decoders;
using Turbine.Tokenizers.Models;
using Turbine.Tokenizers.Normalizers;
using Turbine.Tokenizers.PostProcessors;
using Turbine.Tokenizers.PreTokenizers;

namespace Turbine.Tokenizers;

/// <summary>
/// A Hugging Face tokenizer.json tokenizer (BPE model) giving the same ids and text as the Python <c>tokenizers</c> library.
/// </summary>
/// <remarks>Thread-safe: scratch buffers are per thread and the word cache is concurrent.</remarks>
public sealed class Tokenizer
{
    private readonly INormalizer? _normalizer;
    private readonly IPreTokenizer? _preTokenizer;
    private readonly BpeModel _model;
    private readonly IPostProcessor? _postProcessor;
    private readonly IDecoder? _decoder;
    private readonly AddedTokenMatcher _rawAddedTokens;
    private readonly AddedTokenMatcher _normalizedAddedTokens;
    private readonly Dictionary<int, AddedToken> _addedById = [];
    private readonly Dictionary<string, AddedToken> _addedByContent = [];

    [ThreadStatic] private static EncodeScratch? t_scratch;

    private ChatTemplateCache? _chatTemplates;

    private Tokenizer(TokenizerPipeline pipeline, TokenizerConfig config, string configPath)
    {
        _normalizer = pipeline.Normalizer;
        _preTokenizer = pipeline.PreTokenizer;
        _model = pipeline.Model;
        _postProcessor = pipeline.PostProcessor;
        _decoder = pipeline.Decoder;
        foreach (var token in pipeline.AddedTokens)
        {
            _addedById[token.Id] = token;
            _addedByContent[token.Content] = token;
        }
        var raw = new List<(string, AddedToken)>();
        var normalized = new List<(string, AddedToken)>();
        foreach (var token in pipeline.AddedTokens)
        {
            if (token.Normalized && _normalizer is not null) normalized.Add((_normalizer.Normalize(token.Content), token));
            else raw.Add((token.Content, token));
        }
        _rawAddedTokens = new AddedTokenMatcher(raw);
        _normalizedAddedTokens = new AddedTokenMatcher(normalized);
        Config = config;
        BosTokenId = ConfiguredId(config.BosToken, "bos_token", configPath);
        EosTokenId = ConfiguredId(config.EosToken, "eos_token", configPath);
        PadTokenId = ConfiguredId(config.PadToken, "pad_token", configPath);
        var maxId = _model.VocabSize - 1;
        foreach (var id in _model.Vocab.Values) maxId = Math.Max(maxId, id);
        foreach (var id in _addedById.Keys) maxId = Math.Max(maxId, id);
        VocabSize = maxId + 1;
    }

    /// <summary>Loads tokenizer.json and, when present, tokenizer_config.json from <paramref name="directory"/>.</summary>
    /// <exception cref="TokenizerFormatException">A file is missing, malformed or uses an unsupported component.</exception>
    public static Tokenizer FromDirectory(string directory)
    {
        var tokenizerJson = Path.Combine(directory, "tokenizer.json");
        if (!File.Exists(tokenizerJson)) throw new TokenizerFormatException(tokenizerJson, "does not exist");
        var configJson = Path.Combine(directory, "tokenizer_config.json");
        return FromFile(tokenizerJson, File.Exists(configJson) ? configJson : null);
    }

    /// <summary>Loads <paramref name="tokenizerJson"/> and, when given, <paramref name="tokenizerConfigJson"/>.</summary>
    /// <exception cref="TokenizerFormatException">A file is missing, malformed or uses an unsupported component.</exception>
    public static Tokenizer FromFile(string tokenizerJson, string? tokenizerConfigJson)
    {
        var pipeline = TokenizerJsonLoader.Load(tokenizerJson);
        var config = tokenizerConfigJson is null ? TokenizerConfig.Empty : TokenizerConfig.Load(tokenizerConfigJson);
        return new Tokenizer(pipeline, config, tokenizerConfigJson ?? tokenizerJson);
    }

    /// <summary>Settings from tokenizer_config.json (empty when there was none).</summary>
    public TokenizerConfig Config { get; }

    /// <summary>One more than the largest id of the model vocabulary and the added tokens.</summary>
    public int VocabSize { get; }

    /// <summary>The id of the configured beginning-of-sequence token, if any.</summary>
    public int? BosTokenId { get; }

    /// <summary>The id of the configured end-of-sequence token, if any.</summary>
    public int? EosTokenId { get; }

    /// <summary>The id of the configured padding token, if any.</summary>
    public int? PadTokenId { get; }

    /// <summary>The default chat template (Jinja source) from tokenizer_config.json, or null.</summary>
    public string? ChatTemplate => Config.ChatTemplate;

    /// <summary>
    /// A chat template of this tokenizer, parsed once and cached: <paramref name="templateName"/> from tokenizer_config.json's
    /// named templates, or (null) the default, or "tool_use" when <paramref name="forTools"/> and the model has one.
    /// </summary>
    /// <exception cref="ChatTemplateException">The model has no such template, or it does not parse.</exception>
    public ChatTemplate GetChatTemplate(string? templateName = null, bool forTools = false) =>
        LazyInitializer.EnsureInitialized(ref _chatTemplates, () => new ChatTemplateCache(Config)).Get(templateName, forTools);

    /// <summary>Renders a conversation to the prompt text with the model's chat template, as transformers' apply_chat_template(tokenize=False).</summary>
    /// <param name="messages">The conversation.</param>
    /// <param name="addGenerationPrompt">Whether to end with the header of an assistant turn.</param>
    /// <param name="templateName">A named template from tokenizer_config.json, or null for the default.</param>
    /// <param name="extra">Further template variables (tools, documents, enable_thinking, ...); see <see cref="ChatTemplate.Render(IReadOnlyList{ChatMessage}, bool, IReadOnlyDictionary{string, object?})"/>.</param>
    /// <exception cref="ChatTemplateException">No template, a template syntax error, raise_exception, or a render error.</exception>
    public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, string? templateName = null,
        IReadOnlyDictionary<string, object?>? extra = null)
    {
        var hasTools = extra is not null && extra.TryGetValue("tools", out var tools) && tools is not null;
        return GetChatTemplate(templateName, hasTools).Render(messages, addGenerationPrompt, extra);
    }

    /// <summary>The added tokens (special or not) by id.</summary>
    public IReadOnlyDictionary<int, AddedToken> AddedTokens => _addedById;

    private int? ConfiguredId(string? token, string field, string path)
    {
        if (token is null) return null;
        return TokenToId(token) ?? throw new TokenizerFormatException(path, $"{field} \"{token}\" is not in the vocabulary");
    }

    /// <summary>The id of a token (added tokens first, then the model vocabulary), or null.</summary>
    public int? TokenToId(string token)
    {
        if (_addedByContent.TryGetValue(token, out var added)) return added.Id;
        return _model.TryGetId(token, out var id) ? id : null;
    }

    /// <summary>The token string of an id (in the model's alphabet, e.g. "Ġhello" or "▁hello"), or null.</summary>
    public string? IdToToken(int id) => _addedById.TryGetValue(id, out var added) ? added.Content : _model.IdToToken(id);

    /// <summary>Whether <paramref name="id"/> is an added token marked special.</summary>
    public bool IsSpecialToken(int id) => _addedById.TryGetValue(id, out var added) && added.Special;

    /// <summary>Encodes <paramref name="text"/>; with <paramref name="addSpecialTokens"/> the post-processor adds its tokens (e.g. BOS).</summary>
    public int[] Encode(string text, bool addSpecialTokens)
    {
        var output = new List<int>();
        Encode(text.AsSpan(), addSpecialTokens, output);
        return [.. output];
    }

    /// <summary>Appends the ids of <paramref name="text"/> to <paramref name="output"/>.</summary>
    public void Encode(ReadOnlySpan<char> text, bool addSpecialTokens, List<int> output)
    {
        if (!addSpecialTokens || _postProcessor is null)
        {
            EncodeSequence(text, output);
            return;
        }
        var scratch = t_scratch ??= new EncodeScratch();
        var ids = scratch.SequenceIds;
        ids.Clear();
        EncodeSequence(text, ids);
        _postProcessor.AddSpecialTokens(ids, null, output);
    }

    /// <summary>Encodes a pair of sequences (e.g. for a template "&lt;s&gt; $A &lt;s&gt; $B").</summary>
    public int[] EncodePair(string first, string second, bool addSpecialTokens)
    {
        var a = new List<int>();
        var b = new List<int>();
        EncodeSequence(first, a);
        EncodeSequence(second, b);
        if (!addSpecialTokens || _postProcessor is null) return [.. a, .. b];
        var output = new List<int>(a.Count + b.Count + 4);
        _postProcessor.AddSpecialTokens(a, b, output);
        return [.. output];
    }

    private void EncodeSequence(ReadOnlySpan<char> text, List<int> output)
    {
        var scratch = t_scratch ??= new EncodeScratch();
        var segments = scratch.RawSegments;
        segments.Clear();
        if (_rawAddedTokens.IsEmpty) segments.Add((0, text.Length, -1));
        else _rawAddedTokens.Split(text, segments);
        // Indexing (not foreach) because a nested call could not reuse the list anyway and this avoids an enumerator.
        for (var s = 0; s < segments.Count; s++)
        {
            var (start, end, tokenId) = segments[s];
            if (tokenId >= 0)
            {
                output.Add(tokenId);
                continue;
            }
            var segment = text[start..end];
            if (_normalizer is null)
            {
                TokenizeNormalized(segment, start == 0, output, scratch);
                continue;
            }
            var normalized = _normalizer.Normalize(segment.ToString());
            if (_normalizedAddedTokens.IsEmpty)
            {
                TokenizeNormalized(normalized, start == 0, output, scratch);
                continue;
            }
            var inner = new List<(int Start, int End, int TokenId)>();
            _normalizedAddedTokens.Split(normalized, inner);
            foreach (var (innerStart, innerEnd, innerId) in inner)
            {
                if (innerId >= 0) output.Add(innerId);
                else TokenizeNormalized(normalized.AsSpan(innerStart, innerEnd - innerStart), start == 0 && innerStart == 0, output, scratch);
            }
        }
    }

    private void TokenizeNormalized(ReadOnlySpan<char> text, bool startsText, List<int> output, EncodeScratch scratch)
    {
        if (text.IsEmpty) return;
        if (_preTokenizer is null)
        {
            _model.Tokenize(text, output);
            return;
        }
        var input = scratch.PreTokenizerInput;
        var words = scratch.Words;
        input.Clear();
        words.Clear();
        input.Add(text);
        _preTokenizer.PreTokenize(input, words, startsText);
        for (var i = 0; i < words.Count; i++) _model.Tokenize(words[i], output);
    }

    /// <summary>Decodes ids to text; unknown ids are skipped, as tokenizers does.</summary>
    /// <param name="ids">Token ids.</param>
    /// <param name="skipSpecialTokens">Whether to leave out added tokens marked special.</param>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens)
    {
        var tokens = new List<string>(ids.Length);
        foreach (var id in ids)
        {
            string? token;
            if (_addedById.TryGetValue(id, out var added))
            {
                if (skipSpecialTokens && added.Special) continue;
                token = added.Content;
            }
            else
            {
                token = _model.IdToToken(id);
            }
            if (token is not null) tokens.Add(token);
        }
        if (_decoder is null) return string.Join(' ', tokens);
        _decoder.DecodeChain(tokens);
        return string.Concat(tokens);
    }

    /// <summary>Decodes ids to text.</summary>
    public string Decode(IReadOnlyList<int> ids, bool skipSpecialTokens) =>
        Decode(ids is int[] array ? array : ids is List<int> list ? CollectionsMarshal.AsSpan(list) : [.. ids], skipSpecialTokens);

    /// <summary>A streaming detokenizer for one generated sequence.</summary>
    public IncrementalDecoder CreateIncrementalDecoder(bool skipSpecialTokens) => new(this, skipSpecialTokens);

    /// <summary>Per-thread buffers reused by every encode call.</summary>
    private sealed class EncodeScratch
    {
        public readonly List<(int Start, int End, int TokenId)> RawSegments = [];
        public readonly List<int> SequenceIds = [];
        public readonly PieceList PreTokenizerInput = new();
        public readonly PieceList Words = new();
    }
}
