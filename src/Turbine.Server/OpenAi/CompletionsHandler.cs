using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Text.Json;
using System.Threading.Channels;
using Microsoft.AspNetCore.Http;
using Turbine.Engine.Executor;
using Turbine.Server.Hosting;
using Turbine.Server.Http;
using Turbine.Server.Models;

namespace Turbine.Server.OpenAi;

/// <summary>POST /v1/completions and /v1/chat/completions, one-shot or streamed (server-sent events ending in <c>data: [DONE]</c>).</summary>
public sealed class CompletionsHandler(OpenAiModels models, ServerOptions options, ServerLifetime lifetime)
{
    private static readonly byte[] EventStart = "data: "u8.ToArray();
    private static readonly byte[] EventEnd = "\n\n"u8.ToArray();
    private static readonly byte[] Done = "data: [DONE]\n\n"u8.ToArray();

    /// <summary>Runs one request.</summary>
    public async Task Handle(HttpContext context, bool chat)
    {
        lifetime.ThrowIfStopping();
        using var document = HttpIo.ParseObject(await HttpIo.ReadBodyAsync(context, options.MaxRequestBodyBytes));
        var request = CompletionRequest.Parse(document.RootElement, chat);
        var (modelId, model) = models.Resolve(request.Model);
        long start = Stopwatch.GetTimestamp();
        bool succeeded = false;
        try
        {
            var choices = Plan(request, model.Llm, chat);
            string id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N");
            long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            var response = new ResponseShape(id, created, modelId, chat, model, request, start);
            if (request.Stream)
                await Stream(context, response, choices);
            else
            {
                await Task.WhenAll(choices.Select(c => c.RunAsync(model, start, null, context.RequestAborted)));
                context.Response.ContentType = "application/json";
                await using var w = new Utf8JsonWriter(context.Response.Body, TensorJson.WriterOptions);
                response.WriteFull(w, choices);
            }
            succeeded = !context.RequestAborted.IsCancellationRequested;
        }
        finally
        {
            // OpenAI requests count in the statistics of the model they named, like its generate requests.
            long total = Stopwatch.GetTimestamp() - start;
            if (succeeded)
                model.Statistics.RecordSuccess(total, 0, 0, total, 0);
            else
                model.Statistics.RecordFailure(total);
        }
    }

    private static List<ChoiceRun> Plan(CompletionRequest request, LlmService llm, bool chat)
    {
        var choices = new List<ChoiceRun>();
        foreach (var (text, ids) in request.Prompts)
        {
            int[] prompt = chat
                ? llm.Tokenizer.Encode(ChatPrompt.Render(llm.Tokenizer, request.Messages!, addGenerationPrompt: true), addSpecialTokens: false)
                : ids ?? llm.Tokenizer.Encode(text!, addSpecialTokens: true);
            if (prompt.Length == 0)
                throw new InferenceException(InferenceError.InvalidArgument, "the prompt is empty", chat ? "messages" : "prompt");
            int maxTokens = request.MaxTokens ?? Math.Max(1, llm.MaxModelLength - prompt.Length);
            for (int i = 0; i < request.N; i++)
            {
                var sampling = request.Sampling.Seed is ulong seed ? request.Sampling with { Seed = seed + (ulong)choices.Count } : request.Sampling;
                var generation = new GenerationRequest
                {
                    PromptIds = prompt, MaxTokens = maxTokens, Sampling = sampling, Streaming = true, ReturnLogProbs = request.LogProbs,
                };
                choices.Add(new ChoiceRun(choices.Count, prompt, generation, request.Stop));
            }
        }
        return choices;
    }

    private static async Task Stream(HttpContext context, ResponseShape shape, List<ChoiceRun> choices)
    {
        var events = Channel.CreateUnbounded<(ChoiceRun Choice, string? Text)>(new UnboundedChannelOptions { SingleReader = true });
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted);
        var runs = choices.Select(async c =>
        {
            try
            {
                await c.RunAsync(shape.Model, shape.Start, (choice, text) => events.Writer.WriteAsync((choice, text), cancel.Token).AsTask(), cancel.Token);
                await events.Writer.WriteAsync((c, null), cancel.Token);
            }
            catch (Exception e)
            {
                events.Writer.TryComplete(e);
            }
        }).ToList();
        _ = Task.WhenAll(runs).ContinueWith(_ => events.Writer.TryComplete(), TaskScheduler.Default);
        var body = context.Response.BodyWriter;
        await using var w = new Utf8JsonWriter(body, TensorJson.WriterOptions);
        try
        {
            // The first event is awaited before headers go out, so a refused request still gets its status code.
            if (!await events.Reader.WaitToReadAsync(cancel.Token))
                await events.Reader.Completion;
            context.Response.ContentType = "text/event-stream";
            context.Response.Headers.CacheControl = "no-cache";
            if (shape.Chat)
                foreach (var c in choices)
                    await Send(body, w, x => shape.WriteChunk(x, c, null, roleChunk: true), cancel.Token);
            await foreach (var (choice, text) in events.Reader.ReadAllAsync(cancel.Token))
                await Send(body, w, x => shape.WriteChunk(x, choice, text, roleChunk: false), cancel.Token);
            if (shape.Request.IncludeUsage)
                await Send(body, w, x => shape.WriteUsageChunk(x, choices), cancel.Token);
            body.Write(Done);
            await body.FlushAsync(cancel.Token);
        }
        catch (InferenceException e) when (context.Response.HasStarted)
        {
            body.Write(EventStart);
            w.Reset(body);
            w.WriteStartObject();
            w.WriteStartObject("error");
            w.WriteString("message", e.Message);
            w.WriteString("type", "invalid_request_error");
            w.WriteNumber("code", HttpIo.StatusOf(e.Error));
            w.WriteEndObject();
            w.WriteEndObject();
            w.Flush();
            body.Write(EventEnd);
            await body.FlushAsync(CancellationToken.None);
        }
        finally
        {
            await cancel.CancelAsync();
            await Task.WhenAll(runs);
        }
    }

    private static async Task Send(PipeWriter body, Utf8JsonWriter w, Action<Utf8JsonWriter> write, CancellationToken cancellationToken)
    {
        body.Write(EventStart);
        w.Reset(body);
        write(w);
        w.Flush();
        body.Write(EventEnd);
        await body.FlushAsync(cancellationToken);
    }

    private sealed record ResponseShape(string Id, long Created, string ModelId, bool Chat, TextGenerationModel Model, CompletionRequest Request, long Start)
    {
        private LlmService Llm => Model.Llm;

        public void WriteFull(Utf8JsonWriter w, List<ChoiceRun> choices)
        {
            w.WriteStartObject();
            w.WriteString("id", Id);
            w.WriteString("object", Chat ? "chat.completion" : "text_completion");
            w.WriteNumber("created", Created);
            w.WriteString("model", ModelId);
            w.WriteStartArray("choices");
            foreach (var c in choices)
            {
                w.WriteStartObject();
                w.WriteNumber("index", c.Index);
                if (Chat)
                {
                    w.WriteStartObject("message");
                    w.WriteString("role", "assistant");
                    w.WriteString("content", c.Text);
                    w.WriteEndObject();
                }
                else
                    w.WriteString("text", Request.Echo ? Llm.Tokenizer.Decode(c.PromptIds, skipSpecialTokens: true) + c.Text : c.Text);
                WriteLogProbs(w, c.Tokens, c.LogProbs);
                w.WriteString("finish_reason", c.FinishReason);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            WriteUsage(w, choices);
            w.WriteEndObject();
        }

        public void WriteChunk(Utf8JsonWriter w, ChoiceRun c, string? text, bool roleChunk)
        {
            w.WriteStartObject();
            w.WriteString("id", Id);
            w.WriteString("object", Chat ? "chat.completion.chunk" : "text_completion");
            w.WriteNumber("created", Created);
            w.WriteString("model", ModelId);
            w.WriteStartArray("choices");
            w.WriteStartObject();
            w.WriteNumber("index", c.Index);
            if (Chat)
            {
                w.WriteStartObject("delta");
                if (roleChunk)
                {
                    w.WriteString("role", "assistant");
                    w.WriteString("content", "");
                }
                else if (text is not null)
                    w.WriteString("content", text);
                w.WriteEndObject();
            }
            else
                w.WriteString("text", text ?? "");
            w.WriteNull("logprobs");
            if (text is null && !roleChunk)
                w.WriteString("finish_reason", c.FinishReason);
            else
                w.WriteNull("finish_reason");
            w.WriteEndObject();
            w.WriteEndArray();
            w.WriteEndObject();
        }

        public void WriteUsageChunk(Utf8JsonWriter w, List<ChoiceRun> choices)
        {
            w.WriteStartObject();
            w.WriteString("id", Id);
            w.WriteString("object", Chat ? "chat.completion.chunk" : "text_completion");
            w.WriteNumber("created", Created);
            w.WriteString("model", ModelId);
            w.WriteStartArray("choices");
            w.WriteEndArray();
            WriteUsage(w, choices);
            w.WriteEndObject();
        }

        private void WriteLogProbs(Utf8JsonWriter w, List<int> tokens, List<float> logProbs)
        {
            if (!Request.LogProbs)
            {
                w.WriteNull("logprobs");
                return;
            }
            int count = Math.Min(tokens.Count, logProbs.Count);
            w.WriteStartObject("logprobs");
            if (Chat)
            {
                w.WriteStartArray("content");
                for (int i = 0; i < count; i++)
                {
                    var token = Llm.Tokenizer.Decode([tokens[i]], skipSpecialTokens: false);
                    w.WriteStartObject();
                    w.WriteString("token", token);
                    w.WriteNumber("logprob", logProbs[i]);
                    w.WriteStartArray("bytes");
                    foreach (var b in System.Text.Encoding.UTF8.GetBytes(token))
                        w.WriteNumberValue(b);
                    w.WriteEndArray();
                    w.WriteStartArray("top_logprobs");
                    w.WriteEndArray();
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            else
            {
                var pieces = new string[count];
                for (int i = 0; i < count; i++)
                    pieces[i] = Llm.Tokenizer.Decode([tokens[i]], skipSpecialTokens: false);
                w.WriteStartArray("tokens");
                foreach (var p in pieces)
                    w.WriteStringValue(p);
                w.WriteEndArray();
                w.WriteStartArray("token_logprobs");
                for (int i = 0; i < count; i++)
                    w.WriteNumberValue(logProbs[i]);
                w.WriteEndArray();
                w.WriteStartArray("top_logprobs");
                for (int i = 0; i < count; i++)
                {
                    w.WriteStartObject();
                    w.WriteNumber(pieces[i], logProbs[i]);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
                w.WriteStartArray("text_offset");
                int offset = 0;
                foreach (var p in pieces)
                {
                    w.WriteNumberValue(offset);
                    offset += p.Length;
                }
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }

        private static void WriteUsage(Utf8JsonWriter w, List<ChoiceRun> choices)
        {
            // Each prompt counts once, however many choices it has.
            int prompt = choices.Select(c => c.PromptIds).Distinct().Sum(p => p.Length);
            int completion = choices.Sum(c => c.Tokens.Count);
            w.WriteStartObject("usage");
            w.WriteNumber("prompt_tokens", prompt);
            w.WriteNumber("completion_tokens", completion);
            w.WriteNumber("total_tokens", prompt + completion);
            w.WriteEndObject();
        }
    }
}
