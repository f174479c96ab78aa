using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using Turbine.Backends.Cuda;
using Turbine.Cli.Hosting;
using Turbine.Core.Checkpoints;
using Turbine.Engine.Executor;
using Turbine.Engine.Models;
using Turbine.Engine.Sampling;
using Turbine.Tokenizers;

namespace Turbine.Cli.Commands;

/// <summary><c>turbine run</c>: continue one or more prompts locally, as TensorRT-LLM's run.py does.</summary>
internal static class RunCommand
{
    private const int BlockSize = 16;

    // Chinese prompts and outputs stay readable in JSON lines.
    private static readonly JsonSerializerOptions JsonOutput = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    public static Command Create()
    {
        var model = new Option<string?>("--model", "--engine_dir") { Description = "HF model directory (default: the bundled demo model)" };
        var tokenizerDir = new Option<string?>("--tokenizer_dir") { Description = "Directory of tokenizer.json (default: the model directory)" };
        var inputs = new Option<string[]>("--input_text") { Description = "A prompt; repeat for several, which run as one batch", Arity = ArgumentArity.OneOrMore, AllowMultipleArgumentsPerToken = false };
        var maxOutput = new Option<int>("--max_output_len") { Description = "Tokens to generate per prompt at most", DefaultValueFactory = _ => 64 };
        var temperature = new Option<float>("--temperature") { Description = "Sampling temperature; 0 is greedy", DefaultValueFactory = _ => 0f };
        var topK = new Option<int>("--top_k") { Description = "Sample from the k most likely tokens (0: all)" };
        var topP = new Option<float>("--top_p") { Description = "Nucleus sampling mass in (0, 1]", DefaultValueFactory = _ => 1f };
        var seed = new Option<ulong?>("--seed") { Description = "Random seed: the same seed gives the same text" };
        var json = new Option<bool>("--json") { Description = "One JSON object per input on its own line" };
        var threads = new Option<int>("--threads") { Description = "CPU threads (0: one per core)" };
        var ignoreEos = new Option<bool>("--ignore_eos") { Description = "Keep generating past end-of-sequence tokens" };
        var backend = new BackendOptions();
        var command = new Command("run", "Generate continuations for prompts locally and report tokens/s (like run.py)")
        {
            model, tokenizerDir, inputs, maxOutput, temperature, topK, topP, seed, json, threads, ignoreEos,
            backend.Device, backend.KvCacheDtype, backend.GemmPrecision,
        };
        command.SetAction(parse =>
        {
            var prompts = parse.GetValue(inputs) is { Length: > 0 } given ? given : ["In the beginning"];
            var options = new RunOptions(parse.GetValue(model) ?? ModelLocator.DefaultModel(), parse.GetValue(tokenizerDir), prompts,
                parse.GetValue(maxOutput), parse.GetValue(temperature), parse.GetValue(topK), parse.GetValue(topP), parse.GetValue(seed),
                parse.GetValue(json), parse.GetValue(ignoreEos), backend.Read(parse, parse.GetValue(threads)));
            return Execute(options);
        });
        return command;
    }

    private sealed record RunOptions(string Model, string? TokenizerDir, string[] Prompts, int MaxOutputLen, float Temperature, int TopK,
        float TopP, ulong? Seed, bool Json, bool IgnoreEos, BackendSettings Backend);

    private static int Execute(RunOptions o)
    {
        var sampling = new SamplingParams { Temperature = o.Temperature, TopK = o.TopK, TopP = o.TopP, Seed = o.Seed };
        if (sampling.Validate(maxBeamWidth: 1) is { } invalid)
            return Fail(invalid);
        if (o.MaxOutputLen <= 0)
            return Fail($"--max_output_len must be positive, not {o.MaxOutputLen}");
        BackendSettings backendSettings;
        try
        {
            backendSettings = BackendFactory.Resolve(o.Backend);
        }
        catch (ArgumentException e)
        {
            return Fail(e.Message);
        }
        try
        {
            var tokenizer = Tokenizer.FromDirectory(o.TokenizerDir ?? o.Model);
            var prompts = new int[o.Prompts.Length][];
            int longest = 0;
            for (int i = 0; i < prompts.Length; i++)
            {
                prompts[i] = tokenizer.Encode(o.Prompts[i], addSpecialTokens: true);
                if (prompts[i].Length == 0)
                    return Fail($"input {i} encodes to no tokens");
                longest = Math.Max(longest, prompts[i].Length);
            }
            var options = new ExecutorOptions
            {
                MaxBatchSize = Math.Max(1, prompts.Length),
                MaxNumTokens = 512,
                TokensPerBlock = BlockSize,
                MaxTokensInPagedKvCache = (longest + o.MaxOutputLen + 2 * BlockSize) * prompts.Length,
            };
            using var backend = BackendFactory.Create(backendSettings);
            using var decoder = ConsoleProgress.Run($"loading {Path.GetFileName(Path.GetFullPath(o.Model))}",
                progress => Decoder.Load(o.Model, backend, LlmExecutor.DecoderLimitsFor(options), progress));
            using var executor = new LlmExecutor(decoder, options);
            int? endId = o.IgnoreEos ? -1 : null;
            var clock = Stopwatch.StartNew();
            var runs = new Task<(int[] Ids, TimeSpan Elapsed)>[prompts.Length];
            bool stream = prompts.Length == 1 && !o.Json;
            for (int i = 0; i < prompts.Length; i++)
            {
                var request = new GenerationRequest
                {
                    PromptIds = prompts[i], MaxTokens = o.MaxOutputLen, Sampling = sampling, EndId = endId, Streaming = stream,
                };
                var outputs = executor.Submit(request);
                if (stream)
                    Console.Write($"Input [Text 0]: \"{o.Prompts[0]}\"\nOutput [Text 0]: \"");
                runs[i] = Collect(outputs, stream ? tokenizer.CreateIncrementalDecoder(skipSpecialTokens: true) : null, clock);
            }
            Task.WaitAll(runs);
            var total = clock.Elapsed;
            if (stream)
                Console.WriteLine("\"");
            Report(o, tokenizer, [.. runs.Select(r => r.Result)], total, printText: !stream);
            return 0;
        }
        catch (AggregateException e) when (e.InnerException is RequestRejectedException rejected)
        {
            return Fail(rejected.Message);
        }
        catch (Exception e) when (e is CheckpointException or TokenizerFormatException or RequestRejectedException or IOException or CudaException)
        {
            return Fail(e.Message);
        }
    }

    private static async Task<(int[] Ids, TimeSpan Elapsed)> Collect(IAsyncEnumerable<GenerationOutput> outputs, IncrementalDecoder? echo, Stopwatch clock)
    {
        var ids = new List<int>();
        await foreach (var output in outputs)
        {
            ids.AddRange(output.TokenIds[0]);
            if (echo is not null)
            {
                foreach (int id in output.TokenIds[0])
                    Console.Write(echo.Push(id));
                if (output.IsFinal)
                    Console.Write(echo.Flush());
            }
        }
        return ([.. ids], clock.Elapsed);
    }

    private static void Report(RunOptions o, Tokenizer tokenizer, (int[] Ids, TimeSpan Elapsed)[] results, TimeSpan total, bool printText)
    {
        int generated = 0;
        for (int i = 0; i < results.Length; i++)
        {
            var (ids, elapsed) = results[i];
            generated += ids.Length;
            var text = tokenizer.Decode(ids, skipSpecialTokens: true);
            double rate = elapsed.TotalSeconds > 0 ? ids.Length / elapsed.TotalSeconds : 0;
            if (o.Json)
                Console.WriteLine(JsonSerializer.Serialize(new RunResult(o.Prompts[i], ids, text, Math.Round(rate, 2)), JsonOutput));
            else if (printText)
            {
                Console.WriteLine($"Input [Text {i}]: \"{o.Prompts[i]}\"");
                Console.WriteLine($"Output [Text {i}]: \"{text}\"");
            }
        }
        if (!o.Json)
            Console.WriteLine($"{generated} tokens in {total.TotalSeconds:F2} s: {generated / Math.Max(1e-9, total.TotalSeconds):F1} tokens/s");
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine($"error: {message}");
        return 1;
    }
}

/// <summary>One line of <c>turbine run --json</c>.</summary>
internal sealed record RunResult(
    [property: System.Text.Json.Serialization.JsonPropertyName("input_text")] string InputText,
    [property: System.Text.Json.Serialization.JsonPropertyName("output_ids")] int[] OutputIds,
    [property: System.Text.Json.Serialization.JsonPropertyName("text")] string Text,
    [property: System.Text.Json.Serialization.JsonPropertyName("tokens_per_s")] double TokensPerSecond);
