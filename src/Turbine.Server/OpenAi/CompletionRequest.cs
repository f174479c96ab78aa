using System.Text.Json;
using Turbine.Engine.Sampling;
using Turbine.Server.Models;

namespace Turbine.Server.OpenAi;

/// <summary>The fields of an OpenAI completions or chat completions request that generation needs, validated.</summary>
public sealed class CompletionRequest
{
    /// <summary>The model id asked for.</summary>
    public string? Model { get; private init; }
    /// <summary>Prompts: one text per prompt (or token ids, for completions).</summary>
    public required IReadOnlyList<(string? Text, int[]? Ids)> Prompts { get; init; }
    /// <summary>Chat messages (chat completions only).</summary>
    public IReadOnlyList<ChatTurn>? Messages { get; private init; }
    /// <summary>Choices per prompt.</summary>
    public int N { get; private init; } = 1;
    /// <summary>Tokens to generate at most; null: what the context allows.</summary>
    public int? MaxTokens { get; private init; }
    /// <summary>Sampling parameters.</summary>
    public SamplingParams Sampling { get; private init; } = SamplingParams.Greedy;
    /// <summary>Stop strings (text-level: the first occurrence ends the choice and is not returned).</summary>
    public string[] Stop { get; private init; } = [];
    /// <summary>Stream server-sent events.</summary>
    public bool Stream { get; private init; }
    /// <summary>Send a final usage chunk when streaming.</summary>
    public bool IncludeUsage { get; private init; }
    /// <summary>Return log probabilities (completions: an integer count; chat: a boolean).</summary>
    public bool LogProbs { get; private init; }
    /// <summary>Completions only: return the prompt before the completion.</summary>
    public bool Echo { get; private init; }

    /// <summary>Reads and validates <paramref name="root"/>; errors are 400s naming the field.</summary>
    public static CompletionRequest Parse(JsonElement root, bool chat)
    {
        IReadOnlyList<(string?, int[]?)> prompts;
        IReadOnlyList<ChatTurn>? messages = null;
        if (chat)
        {
            if (!root.TryGetProperty("messages", out var m))
                throw Invalid("'messages' is required", "messages");
            messages = ChatPrompt.ParseMessages(m);
            prompts = [(null, null)];
        }
        else
            prompts = ParsePrompts(root);
        int n = Int(root, "n") ?? 1;
        if (n is < 1 or > 16)
            throw Invalid($"n must be between 1 and 16, got {n}", "n");
        int? maxTokens = Int(root, "max_completion_tokens") ?? Int(root, "max_tokens") ?? (chat ? null : 16);
        if (maxTokens is <= 0)
            throw Invalid($"max_tokens must be at least 1, got {maxTokens}", "max_tokens");
        float temperature = Float(root, "temperature") ?? 1f;
        if (temperature is < 0f or > 2f)
            throw Invalid($"temperature must be between 0 and 2, got {temperature}", "temperature");
        float topP = Float(root, "top_p") ?? 1f;
        if (topP is <= 0f or > 1f)
            throw Invalid($"top_p must be in (0, 1], got {topP}", "top_p");
        float presence = Float(root, "presence_penalty") ?? 0f, frequency = Float(root, "frequency_penalty") ?? 0f;
        if (presence is < -2f or > 2f)
            throw Invalid($"presence_penalty must be between -2 and 2, got {presence}", "presence_penalty");
        if (frequency is < -2f or > 2f)
            throw Invalid($"frequency_penalty must be between -2 and 2, got {frequency}", "frequency_penalty");
        ulong? seed = root.TryGetProperty("seed", out var s) && s.ValueKind == JsonValueKind.Number
            ? (s.TryGetInt64(out long sl) ? unchecked((ulong)sl) : throw Invalid("seed must be an integer", "seed")) : null;
        bool logProbs = chat
            ? root.TryGetProperty("logprobs", out var lp) && lp.ValueKind == JsonValueKind.True
            : Int(root, "logprobs") is int k && k >= 0;
        bool stream = root.TryGetProperty("stream", out var st) && st.ValueKind == JsonValueKind.True;
        bool includeUsage = root.TryGetProperty("stream_options", out var so) && so.ValueKind == JsonValueKind.Object
            && so.TryGetProperty("include_usage", out var iu) && iu.ValueKind == JsonValueKind.True;
        return new CompletionRequest
        {
            Model = root.TryGetProperty("model", out var model) && model.ValueKind == JsonValueKind.String ? model.GetString() : null,
            Prompts = prompts,
            Messages = messages,
            N = n,
            MaxTokens = maxTokens,
            Sampling = new SamplingParams
            {
                Temperature = temperature, TopP = topP, PresencePenalty = presence, FrequencyPenalty = frequency, Seed = seed,
                TopK = Int(root, "top_k") ?? 0, RepetitionPenalty = Float(root, "repetition_penalty") ?? 1f,
            },
            Stop = ParseStop(root),
            Stream = stream,
            IncludeUsage = includeUsage,
            LogProbs = logProbs,
            Echo = !chat && root.TryGetProperty("echo", out var e) && e.ValueKind == JsonValueKind.True,
        };
    }

    private static IReadOnlyList<(string?, int[]?)> ParsePrompts(JsonElement root)
    {
        if (!root.TryGetProperty("prompt", out var p))
            throw Invalid("'prompt' is required", "prompt");
        switch (p.ValueKind)
        {
            case JsonValueKind.String:
                return [(p.GetString(), null)];
            case JsonValueKind.Array when p.GetArrayLength() > 0:
                var first = p[0];
                if (first.ValueKind == JsonValueKind.Number)
                    return [(null, Ids(p))];
                var list = new List<(string?, int[]?)>();
                foreach (var item in p.EnumerateArray())
                    list.Add(item.ValueKind switch
                    {
                        JsonValueKind.String => (item.GetString(), null),
                        JsonValueKind.Array => (null, Ids(item)),
                        _ => throw Invalid("'prompt' must be a string, an array of strings, or token ids", "prompt"),
                    });
                return list;
            default:
                throw Invalid("'prompt' must be a string, an array of strings, or token ids", "prompt");
        }
    }

    private static int[] Ids(JsonElement array)
    {
        var ids = new int[array.GetArrayLength()];
        int i = 0;
        foreach (var t in array.EnumerateArray())
            if (t.ValueKind != JsonValueKind.Number || !t.TryGetInt32(out ids[i++]))
                throw Invalid("token ids in 'prompt' must be integers", "prompt");
        return ids;
    }

    private static string[] ParseStop(JsonElement root)
    {
        if (!root.TryGetProperty("stop", out var stop) || stop.ValueKind == JsonValueKind.Null)
            return [];
        if (stop.ValueKind == JsonValueKind.String)
            return stop.GetString() is { Length: > 0 } one ? [one] : [];
        if (stop.ValueKind != JsonValueKind.Array || stop.EnumerateArray().Any(s => s.ValueKind != JsonValueKind.String))
            throw Invalid("'stop' must be a string or an array of strings", "stop");
        if (stop.GetArrayLength() > 4)
            throw Invalid("'stop' holds at most 4 sequences", "stop");
        return [.. stop.EnumerateArray().Select(s => s.GetString()!).Where(s => s.Length > 0)];
    }

    private static int? Int(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
            return null;
        return v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int i) ? i : throw Invalid($"'{name}' must be an integer", name);
    }

    private static float? Float(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null)
            return null;
        return v.ValueKind == JsonValueKind.Number ? v.GetSingle() : throw Invalid($"'{name}' must be a number", name);
    }

    private static InferenceException Invalid(string message, string param) => new(InferenceError.InvalidArgument, message, param);
}
