using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Turbine.Server.Hosting;
using Turbine.Server.Http;
using Turbine.Server.Models;

namespace Turbine.Server.OpenAi;

/// <summary>vLLM's POST /tokenize (a prompt, or chat messages) and POST /detokenize.</summary>
public sealed class TokenizeHandler(OpenAiModels models, ServerOptions options)
{
    /// <summary>Text or chat messages to token ids: <c>{"tokens", "count", "max_model_len"}</c>.</summary>
    public async Task Tokenize(HttpContext context)
    {
        using var document = HttpIo.ParseObject(await HttpIo.ReadBodyAsync(context, options.MaxRequestBodyBytes));
        var root = document.RootElement;
        var llm = models.Resolve(root.TryGetProperty("model", out var m) ? m.GetString() : null).Model.Llm;
        bool addSpecial = !root.TryGetProperty("add_special_tokens", out var a) || a.ValueKind != JsonValueKind.False;
        int[] ids;
        if (root.TryGetProperty("messages", out var messages))
        {
            bool generationPrompt = !root.TryGetProperty("add_generation_prompt", out var g) || g.ValueKind != JsonValueKind.False;
            var prompt = ChatPrompt.Render(llm.Tokenizer, ChatPrompt.ParseMessages(messages), generationPrompt);
            // A rendered template already holds its special tokens.
            ids = llm.Tokenizer.Encode(prompt, addSpecialTokens: root.TryGetProperty("add_special_tokens", out _) && addSpecial);
        }
        else if (root.TryGetProperty("prompt", out var p) && p.ValueKind == JsonValueKind.String)
            ids = llm.Tokenizer.Encode(p.GetString()!, addSpecial);
        else
            throw new InferenceException(InferenceError.InvalidArgument, "give 'prompt' (a string) or 'messages'");
        context.Response.ContentType = "application/json";
        await using var w = new Utf8JsonWriter(context.Response.Body, TensorJson.WriterOptions);
        w.WriteStartObject();
        w.WriteNumber("count", ids.Length);
        w.WriteNumber("max_model_len", llm.MaxModelLength);
        w.WriteStartArray("tokens");
        foreach (int id in ids)
            w.WriteNumberValue(id);
        w.WriteEndArray();
        w.WriteEndObject();
    }

    /// <summary>Token ids to text: <c>{"prompt"}</c>.</summary>
    public async Task Detokenize(HttpContext context)
    {
        using var document = HttpIo.ParseObject(await HttpIo.ReadBodyAsync(context, options.MaxRequestBodyBytes));
        var root = document.RootElement;
        var llm = models.Resolve(root.TryGetProperty("model", out var m) ? m.GetString() : null).Model.Llm;
        if (!root.TryGetProperty("tokens", out var tokens) || tokens.ValueKind != JsonValueKind.Array)
            throw new InferenceException(InferenceError.InvalidArgument, "'tokens' must be an array of token ids", "tokens");
        var ids = new int[tokens.GetArrayLength()];
        int i = 0;
        foreach (var t in tokens.EnumerateArray())
            if (!t.TryGetInt32(out ids[i++]) || (uint)ids[i - 1] >= (uint)llm.Tokenizer.VocabSize)
                throw new InferenceException(InferenceError.InvalidArgument, $"token {t.GetRawText()} is not an id in [0, {llm.Tokenizer.VocabSize})", "tokens");
        context.Response.ContentType = "application/json";
        await using var w = new Utf8JsonWriter(context.Response.Body, TensorJson.WriterOptions);
        w.WriteStartObject();
        w.WriteString("prompt", llm.Tokenizer.Decode(ids, skipSpecialTokens: false));
        w.WriteEndObject();
    }
}
