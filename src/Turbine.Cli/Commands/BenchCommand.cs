using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using Spectre.Console;
using Turbine.Backends.Cuda;
using Turbine.Cli.Benchmarking;
using Turbine.Cli.Hosting;
using Turbine.Core.Checkpoints;
using Turbine.Core.Models;
using Turbine.Engine.Executor;
using Turbine.Tokenizers;

namespace Turbine.Cli.Commands;

/// <summary>
/// <c>turbine bench</c>: TensorRT-LLM's benchmarking tools. <c>dataset</c> is prepare_dataset.py, <c>run</c> is
/// gptManagerBenchmark (in-process, or against a server with --url), <c>sweep</c> is gptSessionBenchmark.
/// </summary>
internal static class BenchCommand
{
    public static Command Create() => new("bench", "Benchmark generation: make workloads, drive the engine or a server, sweep static batches")
    {
        CreateDataset(), CreateRun(), CreateSweep(),
    };

    private static Command CreateDataset()
    {
        var numRequests = new Option<int>("--num-requests") { Description = "Number of requests", Required = true };
        var inputMean = new Option<double>("--input-mean") { Description = "Mean prompt length in tokens", Required = true };
        var inputStdev = new Option<double>("--input-stdev") { Description = "Standard deviation of prompt lengths (0: all equal)" };
        var outputMean = new Option<double>("--output-mean") { Description = "Mean output length in tokens", Required = true };
        var outputStdev = new Option<double>("--output-stdev") { Description = "Standard deviation of output lengths (0: all equal)" };
        var vocabSize = new Option<int?>("--vocab-size") { Description = "Draw token ids from [0, V) (default: the model's vocabulary)" };
        var model = new Option<string?>("--model") { Description = "Model directory: its vocabulary size, and with a tokenizer.json, prompt texts for --url benchmarks" };
        var seed = new Option<int>("--seed") { Description = "Random seed: the same seed gives the same file" };
        var output = new Option<string>("--output") { Description = "JSON file to write: {metadata, samples: [{input_len, input_ids, output_len, prompt?}]}", Required = true };
        var normal = new Command("token-norm-dist", "Normally distributed prompt and output lengths with random token ids (prepare_dataset.py token-norm-dist)")
        {
            numRequests, inputMean, inputStdev, outputMean, outputStdev, vocabSize, model, seed, output,
        };
        normal.SetAction(parse =>
        {
            try
            {
                var modelDir = parse.GetValue(model);
                Tokenizer? tokenizer = modelDir is not null && File.Exists(Path.Combine(modelDir, "tokenizer.json")) ? Tokenizer.FromDirectory(modelDir) : null;
                int vocab = parse.GetValue(vocabSize) ?? (modelDir is not null ? HfModelConfig.Load(modelDir).VocabSize : 0);
                if (vocab < 1)
                    return Fail("give --vocab-size V or --model DIR");
                var dataset = TokenNormDistGenerator.Generate(new TokenNormDistOptions
                {
                    NumRequests = parse.GetValue(numRequests), VocabSize = vocab, Seed = parse.GetValue(seed),
                    InputMean = parse.GetValue(inputMean), InputStdev = parse.GetValue(inputStdev),
                    OutputMean = parse.GetValue(outputMean), OutputStdev = parse.GetValue(outputStdev),
                }, tokenizer, tokenizer is null ? null : modelDir);
                var path = parse.GetValue(output)!;
                dataset.Save(path);
                Console.Error.WriteLine($"wrote {dataset.Samples.Length} requests to {path}" + (tokenizer is null ? "" : " (with prompt texts)"));
                return 0;
            }
            catch (ArgumentOutOfRangeException e)
            {
                return Fail(e.Message);
            }
            catch (Exception e) when (e is CheckpointException or TokenizerFormatException or IOException or UnauthorizedAccessException)
            {
                return Fail(e.Message);
            }
        });
        return new Command("dataset", "Write a benchmark workload file (prepare_dataset.py)") { normal };
    }

    private static Command CreateRun()
    {
        var model = new Option<string?>("--model") { Description = "Model directory to load in-process (without --url)" };
        var dataset = new Option<string>("--dataset") { Description = "Workload file from 'turbine bench dataset'", Required = true };
        var mode = new Option<string>("--mode") { Description = "ifb (in-flight batching), static, or static-emulated (full batch or timeout)", DefaultValueFactory = _ => "ifb" };
        mode.AcceptOnlyFromAmong("ifb", "static", "static-emulated");
        var rate = new Option<string?>("--request-rate") { Description = "Poisson arrival rate in requests/s; 'inf' or absent sends all at once" };
        var concurrency = new Option<int>("--concurrency") { Description = "Requests in flight at most (0: no limit)" };
        var maxBatch = new Option<int>("--max-batch-size") { Description = "Requests in the running batch at most", DefaultValueFactory = _ => 64 };
        var maxTokens = new Option<int>("--max-num-tokens") { Description = "Tokens per engine step at most (prompts are prefilled in chunks)", DefaultValueFactory = _ => 2048 };
        var kvTokens = new Option<int?>("--kv-tokens") { Description = "KV cache capacity in tokens (default: a full batch of the longest request)" };
        var kvFraction = KvFractionOption();
        var timeout = new Option<int>("--static-timeout-ms") { Description = "static-emulated: wait this long for a full batch", DefaultValueFactory = _ => 500 };
        var threads = new Option<int>("--threads") { Description = "CPU threads (0: one per core)" };
        var backend = new BackendOptions();
        var seed = new Option<int>("--seed") { Description = "Seed of the arrival times" };
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of the table" };
        var url = new Option<Uri?>("--url")
        {
            Description = "For servers: drive a running Triton-compatible server at this URL through POST /v2/models/{model-name}/generate_stream "
                + "(text_input, max_tokens, min_length, stream) instead of loading --model; the dataset needs prompt texts, and each streamed event counts as one token",
        };
        var modelName = new Option<string>("--model-name") { Description = "For servers (--url): the served model's name", DefaultValueFactory = _ => "ensemble" };
        var command = new Command("run", "Send a workload to the engine in-process (or to a server with --url) and report throughput and latency (gptManagerBenchmark)")
        {
            model, dataset, mode, rate, concurrency, maxBatch, maxTokens, kvTokens, kvFraction, timeout, threads,
            backend.Device, backend.KvCacheDtype, backend.GemmPrecision, seed, json, url, modelName,
        };
        // The body blocks on the benchmark inside a progress display; the action stays async for Ctrl+C's token.
        command.SetAction((parse, cancellationToken) => Task.FromResult(Run(parse, cancellationToken)));
        return command;

        int Run(ParseResult parse, CancellationToken cancellationToken)
        {
            try
            {
                var load = new LoadSettings { RequestRate = ParseRate(parse.GetValue(rate)), Concurrency = parse.GetValue(concurrency), Seed = parse.GetValue(seed) };
                var workload = BenchmarkDataset.Load(parse.GetValue(dataset)!);
                var settings = new InProcessSettings
                {
                    Mode = ParseMode(parse.GetValue(mode)!), MaxBatchSize = parse.GetValue(maxBatch), MaxNumTokens = parse.GetValue(maxTokens),
                    KvTokens = parse.GetValue(kvTokens), KvCacheFreeGpuMemFraction = parse.GetValue(kvFraction),
                    StaticTimeout = TimeSpan.FromMilliseconds(parse.GetValue(timeout)),
                };
                if (settings.MaxBatchSize < 1 || settings.MaxNumTokens < 1 || load.Concurrency < 0)
                    return Fail("--max-batch-size and --max-num-tokens must be positive, --concurrency not negative");
                if (CheckKvSizing(settings.KvTokens, settings.KvCacheFreeGpuMemFraction) is { } invalid)
                    return Fail(invalid);
                BenchmarkReport report;
                RunConfiguration config;
                if (parse.GetValue(url) is { } server)
                {
                    config = RunConfiguration.Of(server.ToString(), "server", load);
                    using var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
                    var target = new TritonGenerateStreamTarget(http, server, parse.GetValue(modelName)!);
                    report = ConsoleProgress.Run("requests", progress =>
                        BenchmarkReport.From(LoadGenerator.RunAsync(workload.Samples, target, load, progress, cancellationToken).GetAwaiter().GetResult()));
                }
                else
                {
                    var modelDir = parse.GetValue(model) ?? ModelLocator.DefaultModel();
                    var options = InProcessBenchmark.ExecutorOptionsFor(settings, workload);
                    using var local = ConsoleProgress.Run($"loading {Path.GetFileName(Path.GetFullPath(modelDir))}",
                        progress => LocalModel.Load(modelDir, backend.Read(parse, parse.GetValue(threads)), LlmExecutor.DecoderLimitsFor(options), progress));
                    using var executor = new LlmExecutor(local.Decoder, options);
                    config = RunConfiguration.Of(modelDir, parse.GetValue(mode)!, load, executor, local.Device);
                    report = ConsoleProgress.Run($"{config.Mode}: requests", progress =>
                        InProcessBenchmark.RunAsync(executor, workload, load, progress, cancellationToken).GetAwaiter().GetResult());
                }
                if (parse.GetValue(json))
                    Console.WriteLine(JsonSerializer.Serialize(new RunSummary(config, report)));
                else
                    PrintReport(config, report);
                if (report.Failed > 0)
                    Console.Error.WriteLine($"warning: {report.Failed} of {report.Requests} requests failed; the first: {report.FirstError}");
                return report.Completed > 0 ? 0 : 1;
            }
            catch (Exception e) when (e is CheckpointException or InvalidDataException or IOException or UnauthorizedAccessException
                or ArgumentException or FormatException or CudaException)
            {
                return Fail(e.Message);
            }
        }
    }

    private static Command CreateSweep()
    {
        var model = new Option<string?>("--model") { Description = "Model directory (default: the bundled demo model)" };
        var batchSizes = new Option<string>("--batch-sizes") { Description = "Comma-separated batch sizes", DefaultValueFactory = _ => "1,8,32" };
        var inputLens = new Option<string>("--input-lens") { Description = "Comma-separated prompt lengths", DefaultValueFactory = _ => "128" };
        var outputLens = new Option<string>("--output-lens") { Description = "Comma-separated output lengths", DefaultValueFactory = _ => "128" };
        var maxTokens = new Option<int>("--max-num-tokens") { Description = "Tokens per engine step at most", DefaultValueFactory = _ => 2048 };
        var kvFraction = KvFractionOption();
        var threads = new Option<int>("--threads") { Description = "CPU threads (0: one per core)" };
        var backend = new BackendOptions();
        var seed = new Option<int>("--seed") { Description = "Seed of the random prompts" };
        var json = new Option<bool>("--json") { Description = "Print one JSON array instead of the table" };
        var command = new Command("sweep", "Time static batches for every batch size × input length × output length (gptSessionBenchmark)")
        {
            model, batchSizes, inputLens, outputLens, maxTokens, kvFraction, threads, backend.Device, backend.KvCacheDtype, backend.GemmPrecision, seed, json,
        };
        command.SetAction((parse, cancellationToken) => Task.FromResult(Run(parse, cancellationToken)));
        return command;

        int Run(ParseResult parse, CancellationToken cancellationToken)
        {
            try
            {
                int[] batches = ParseList(parse.GetValue(batchSizes)!, "--batch-sizes");
                int[] inputs = ParseList(parse.GetValue(inputLens)!, "--input-lens");
                int[] outputs = ParseList(parse.GetValue(outputLens)!, "--output-lens");
                int numTokens = parse.GetValue(maxTokens);
                if (numTokens < 1)
                    return Fail("--max-num-tokens must be positive");
                float? fraction = parse.GetValue(kvFraction);
                if (CheckKvSizing(null, fraction) is { } invalid)
                    return Fail(invalid);
                var modelDir = parse.GetValue(model) ?? ModelLocator.DefaultModel();
                using var local = ConsoleProgress.Run($"loading {Path.GetFileName(Path.GetFullPath(modelDir))}",
                    progress => LocalModel.Load(modelDir, backend.Read(parse, parse.GetValue(threads)), BatchSweep.LimitsFor(batches, numTokens), progress));
                var points = new List<SweepPoint>();
                int total = batches.Length * inputs.Length * outputs.Length;
                ConsoleProgress.Run("sweep", progress =>
                {
                    progress.Report((0, total));
                    foreach (int b in batches)
                        foreach (int i in inputs)
                            foreach (int o in outputs)
                            {
                                points.Add(BatchSweep.MeasureAsync(local.Decoder, b, i, o, numTokens, parse.GetValue(seed), fraction, cancellationToken)
                                    .GetAwaiter().GetResult());
                                progress.Report((points.Count, total));
                            }
                    return points;
                });
                if (parse.GetValue(json))
                    Console.WriteLine(JsonSerializer.Serialize(points));
                else
                    PrintSweep(local.Device, points);
                return points.TrueForAll(p => p.Errors == 0) ? 0 : 1;
            }
            catch (Exception e) when (e is CheckpointException or IOException or UnauthorizedAccessException or ArgumentException or FormatException
                or CudaException)
            {
                return Fail(e.Message);
            }
        }
    }

    private static Option<float?> KvFractionOption() => new("--kv-cache-free-gpu-mem-fraction")
    {
        Description = "KV cache size as a share in (0, 1] of the GPU memory free after loading (kv_cache_free_gpu_mem_fraction), "
            + "instead of a full batch of the longest request; on the CPU the executor's memory budget applies",
    };

    private static string? CheckKvSizing(int? kvTokens, float? fraction)
    {
        if (kvTokens is not null && fraction is not null)
            return "give --kv-tokens or --kv-cache-free-gpu-mem-fraction, not both";
        if (kvTokens < 1)
            return $"--kv-tokens must be positive, not {kvTokens}";
        if (fraction is float f && !(f > 0f && f <= 1f))
            return $"--kv-cache-free-gpu-mem-fraction must be in (0, 1], not {f.ToString(CultureInfo.InvariantCulture)}";
        return null;
    }

    private static BenchmarkMode ParseMode(string mode) => mode switch
    {
        "static" => BenchmarkMode.Static,
        "static-emulated" => BenchmarkMode.StaticEmulated,
        _ => BenchmarkMode.Ifb,
    };

    private static double ParseRate(string? text)
    {
        if (text is null || text.Equals("inf", StringComparison.OrdinalIgnoreCase))
            return double.PositiveInfinity;
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double rate) || !(rate > 0))
            throw new FormatException($"--request-rate must be a positive number or 'inf', not '{text}'");
        return rate;
    }

    private static int[] ParseList(string text, string option)
    {
        var parts = text.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var values = new int[parts.Length];
        for (int i = 0; i < parts.Length; i++)
            if (!int.TryParse(parts[i], NumberStyles.None, CultureInfo.InvariantCulture, out values[i]) || values[i] < 1)
                throw new FormatException($"{option}: '{parts[i]}' is not a positive integer");
        if (values.Length == 0)
            throw new FormatException($"{option}: give at least one value");
        return values;
    }

    private static void PrintReport(RunConfiguration config, BenchmarkReport r)
    {
        var summary = new Table().Border(TableBorder.Rounded).AddColumn("").AddColumn(new TableColumn("value").RightAligned());
        summary.Title = new TableTitle($"turbine bench run: {Markup.Escape(config.Mode)} on {Markup.Escape(config.Target)}");
        if (config.Device is not null)
            summary.AddRow("device", Markup.Escape(config.Device));
        if (config.KvTokens is int kv)
            summary.AddRow("KV cache (tokens)", kv.ToString(CultureInfo.InvariantCulture));
        summary.AddRow("requests (completed / failed)", $"{r.Completed} / {r.Failed}");
        if (r.LengthMismatches > 0)
            summary.AddRow("requests with a wrong output length", r.LengthMismatches.ToString(CultureInfo.InvariantCulture));
        summary.AddRow("input / output tokens", $"{r.InputTokens} / {r.OutputTokens}");
        summary.AddRow("duration (s)", r.DurationSeconds.ToString("F2", CultureInfo.InvariantCulture));
        summary.AddRow("request throughput (req/s)", r.RequestThroughput.ToString("F3", CultureInfo.InvariantCulture));
        summary.AddRow("output tokens/s", r.OutputTokensPerSecond.ToString("F1", CultureInfo.InvariantCulture));
        summary.AddRow("total tokens/s", r.TotalTokensPerSecond.ToString("F1", CultureInfo.InvariantCulture));
        AnsiConsole.Write(summary);
        var latency = new Table().Border(TableBorder.Rounded).AddColumn("latency (ms)");
        foreach (var column in (string[])["mean", "p50", "p90", "p99"])
            latency.AddColumn(new TableColumn(column).RightAligned());
        AddLatencyRow(latency, "time to first token", r.TimeToFirstToken);
        AddLatencyRow(latency, "inter-token latency", r.InterTokenLatency);
        AddLatencyRow(latency, "end-to-end latency", r.EndToEndLatency);
        AnsiConsole.Write(latency);
    }

    private static void AddLatencyRow(Table table, string name, LatencySummary s) =>
        table.AddRow(name, F(s.Mean), F(s.P50), F(s.P90), F(s.P99));

    private static void PrintSweep(string device, List<SweepPoint> points)
    {
        var table = new Table().Border(TableBorder.Rounded).Title($"turbine bench sweep (static batches) on {Markup.Escape(device)}");
        foreach (var column in (string[])["batch", "input", "output", "latency (ms)", "tokens/s", "TTFT (ms)", "ITL (ms)", "errors"])
            table.AddColumn(new TableColumn(column).RightAligned());
        foreach (var p in points)
            table.AddRow(p.BatchSize.ToString(CultureInfo.InvariantCulture), p.InputLen.ToString(CultureInfo.InvariantCulture),
                p.OutputLen.ToString(CultureInfo.InvariantCulture), F(p.LatencyMs), p.TokensPerSecond.ToString("F1", CultureInfo.InvariantCulture),
                F(p.TimeToFirstTokenMs), F(p.InterTokenLatencyMs), p.Errors.ToString(CultureInfo.InvariantCulture));
        AnsiConsole.Write(table);
    }

    private static string F(double value) => value.ToString("F1", CultureInfo.InvariantCulture);

    private static int Fail(string message)
    {
        Console.Error.WriteLine($"error: {message}");
        return 1;
    }

    /// <summary>What a run was configured with, printed with its report; executor fields are null for servers.</summary>
    private sealed record RunConfiguration
    {
        [JsonPropertyName("target")] public required string Target { get; init; }
        [JsonPropertyName("mode")] public required string Mode { get; init; }
        [JsonPropertyName("device")] public string? Device { get; init; }
        [JsonPropertyName("max_batch_size")] public int? MaxBatchSize { get; init; }
        [JsonPropertyName("max_num_tokens")] public int? MaxNumTokens { get; init; }
        // The capacity the executor allocated, also when it was sized from free GPU memory.
        [JsonPropertyName("kv_tokens")] public int? KvTokens { get; init; }
        [JsonPropertyName("kv_cache_free_gpu_mem_fraction")] public float? KvCacheFreeGpuMemFraction { get; init; }
        [JsonPropertyName("static_timeout_ms")] public double? StaticTimeoutMs { get; init; }
        // JSON has no infinity; null means all requests at once.
        [JsonPropertyName("request_rate")] public double? RequestRate { get; init; }
        [JsonPropertyName("concurrency")] public int Concurrency { get; init; }

        public static RunConfiguration Of(string target, string mode, LoadSettings load, LlmExecutor? executor = null, string? device = null) => new()
        {
            Target = target, Mode = mode, Device = device, MaxBatchSize = executor?.Options.MaxBatchSize, MaxNumTokens = executor?.Options.MaxNumTokens,
            KvTokens = executor?.KvCapacityTokens,
            KvCacheFreeGpuMemFraction = executor?.Options is { MaxTokensInPagedKvCache: null } sized ? sized.KvCacheFreeGpuMemFraction : null,
            StaticTimeoutMs = executor?.Options.StaticBatchTimeout.TotalMilliseconds,
            RequestRate = double.IsPositiveInfinity(load.RequestRate) ? null : load.RequestRate, Concurrency = load.Concurrency,
        };
    }

    private sealed record RunSummary([property: JsonPropertyName("config")] RunConfiguration Config, [property: JsonPropertyName("results")] BenchmarkReport Results);
}
