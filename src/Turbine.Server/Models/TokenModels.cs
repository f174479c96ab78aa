namespace Turbine.Server.Models;

/// <summary>The <c>preprocessing</c> model: text to input ids, word lists to TensorRT-LLM's [2, n] format.</summary>
public sealed class PreprocessingModel(LlmService llm, string name = "preprocessing") : ServedModel
{
    private static readonly TensorSpec[] InputSpecs =
    [
        new("QUERY", DataTypes.Bytes, [-1]),
        new("REQUEST_OUTPUT_LEN", DataTypes.Int32, [-1]),
        new("BAD_WORDS_DICT", DataTypes.Bytes, [-1], true),
        new("STOP_WORDS_DICT", DataTypes.Bytes, [-1], true),
        new("END_ID", DataTypes.Int32, [1], true),
        new("PAD_ID", DataTypes.Int32, [1], true),
    ];

    private static readonly TensorSpec[] OutputSpecs =
    [
        new("INPUT_ID", DataTypes.Int32, [-1]),
        new("REQUEST_INPUT_LEN", DataTypes.Int32, [1]),
        new("BAD_WORDS_IDS", DataTypes.Int32, [2, -1]),
        new("STOP_WORDS_IDS", DataTypes.Int32, [2, -1]),
        new("REQUEST_OUTPUT_LEN", DataTypes.Int32, [-1]),
        new("OUT_END_ID", DataTypes.Int32, [1]),
        new("OUT_PAD_ID", DataTypes.Int32, [1]),
    ];

    /// <inheritdoc />
    public override string Name => name;
    /// <inheritdoc />
    public override string Platform => "python";
    /// <inheritdoc />
    public override string Backend => "tokenizer";
    /// <inheritdoc />
    public override IReadOnlyList<TensorSpec> Inputs => InputSpecs;
    /// <inheritdoc />
    public override IReadOnlyList<TensorSpec> Outputs => OutputSpecs;
    /// <inheritdoc />
    public override IReadOnlyDictionary<string, string> Parameters => new Dictionary<string, string> { ["tokenizer_dir"] = llm.Name, ["add_special_tokens"] = "true" };

    /// <inheritdoc />
    public override async IAsyncEnumerable<InferResponse> InferAsync(InferRequest request, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await Task.CompletedTask.ConfigureAwait(false);
        var ids = llm.Tokenizer.Encode(request.Required("QUERY").GetString(0), addSpecialTokens: true);
        int endId = (int)request.Int("END_ID", llm.Tokenizer.EosTokenId ?? -1);
        int padId = (int)request.Int("PAD_ID", llm.Tokenizer.PadTokenId ?? endId);
        yield return new InferResponse(
        [
            new InferTensor("INPUT_ID", DataTypes.Int32, [1, ids.Length], ids),
            new InferTensor("REQUEST_INPUT_LEN", DataTypes.Int32, [1, 1], new[] { ids.Length }),
            WordLists.ToTensor("BAD_WORDS_IDS", llm.EncodeWords(request.Input("BAD_WORDS_DICT"))),
            WordLists.ToTensor("STOP_WORDS_IDS", llm.EncodeWords(request.Input("STOP_WORDS_DICT"))),
            new InferTensor("REQUEST_OUTPUT_LEN", DataTypes.Int32, [1, 1], new[] { (int)request.Required("REQUEST_OUTPUT_LEN").GetInt64(0) }),
            new InferTensor("OUT_END_ID", DataTypes.Int32, [1, 1], new[] { endId }),
            new InferTensor("OUT_PAD_ID", DataTypes.Int32, [1, 1], new[] { padId }),
        ]);
    }
}

/// <summary>The <c>postprocessing</c> model: token ids back to text.</summary>
public sealed class PostprocessingModel(LlmService llm, string name = "postprocessing") : ServedModel
{
    private static readonly TensorSpec[] InputSpecs =
    [
        new("TOKENS_BATCH", DataTypes.Int32, [-1, -1]),
        new("SEQUENCE_LENGTH", DataTypes.Int32, [-1], true),
    ];

    private static readonly TensorSpec[] OutputSpecs = [new("OUTPUT", DataTypes.Bytes, [-1])];

    /// <inheritdoc />
    public override string Name => name;
    /// <inheritdoc />
    public override string Platform => "python";
    /// <inheritdoc />
    public override string Backend => "tokenizer";
    /// <inheritdoc />
    public override IReadOnlyList<TensorSpec> Inputs => InputSpecs;
    /// <inheritdoc />
    public override IReadOnlyList<TensorSpec> Outputs => OutputSpecs;
    /// <inheritdoc />
    public override IReadOnlyDictionary<string, string> Parameters => new Dictionary<string, string> { ["tokenizer_dir"] = llm.Name, ["skip_special_tokens"] = "true" };

    /// <inheritdoc />
    public override async IAsyncEnumerable<InferResponse> InferAsync(InferRequest request, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await Task.CompletedTask.ConfigureAwait(false);
        var tokens = request.Required("TOKENS_BATCH").ToInt32Array();
        int length = (int)request.Int("SEQUENCE_LENGTH", tokens.Length);
        if (length < 0 || length > tokens.Length)
            throw new InferenceException(InferenceError.InvalidArgument, $"SEQUENCE_LENGTH {length} is outside [0, {tokens.Length}]");
        var text = llm.Tokenizer.Decode(tokens.AsSpan(0, length), skipSpecialTokens: true);
        yield return new InferResponse([new InferTensor("OUTPUT", DataTypes.Bytes, [1], new[] { text })]);
    }
}

/// <summary>TensorRT-LLM's word-list tensors: [1, 2, n], the words' ids back to back, then their end offsets padded with -1.</summary>
public static class WordLists
{
    /// <summary>Packs <paramref name="words"/>.</summary>
    public static InferTensor ToTensor(string name, int[][] words)
    {
        int total = Math.Max(1, words.Sum(w => w.Length));
        var data = new int[2 * total];
        data.AsSpan().Fill(-1);
        int at = 0;
        for (int i = 0; i < words.Length; i++)
        {
            words[i].CopyTo(data, at);
            at += words[i].Length;
            data[total + i] = at;
        }
        if (words.Length == 0)
            data[0] = 0;
        return new InferTensor(name, DataTypes.Int32, [1, 2, total], data);
    }

    /// <summary>Unpacks a tensor made by <see cref="ToTensor"/>; null gives no words.</summary>
    public static int[][] FromTensor(InferTensor? tensor)
    {
        if (tensor is null || tensor.Count == 0)
            return [];
        if (tensor.Count % 2 != 0)
            throw new InferenceException(InferenceError.InvalidArgument, $"'{tensor.Name}' must have shape [2, n]");
        var data = tensor.ToInt32Array();
        int n = data.Length / 2;
        var words = new List<int[]>();
        int start = 0;
        for (int i = 0; i < n && data[n + i] >= 0; i++)
        {
            int end = data[n + i];
            if (end < start || end > n)
                throw new InferenceException(InferenceError.InvalidArgument, $"'{tensor.Name}' has offset {end} outside [{start}, {n}]");
            if (end > start)
                words.Add(data[start..end]);
            start = end;
        }
        return [.. words];
    }
}
