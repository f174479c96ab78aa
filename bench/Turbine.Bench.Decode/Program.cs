using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using Turbine.Backends.Cpu;
using Turbine.Bench.Decode;
using Turbine.Engine.Executor;
using Turbine.Engine.Models;

// CPU decode throughput at batch 1 against the memory-bandwidth floor:
//   dotnet run -c Release --project bench/Turbine.Bench.Decode -- [--model DIR] [--tokens 128] [--prompt 16] [--threads 0]
// Without --model it writes a random Llama-shaped bf16 checkpoint of 134M parameters to .cache/bench-llama-134m.
string? model = null;
int tokens = 128, promptLength = 16, threads = 0;
for (int i = 0; i < args.Length; i++)
    switch (args[i])
    {
        case "--model": model = args[++i]; break;
        case "--tokens": tokens = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--prompt": promptLength = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        case "--threads": threads = int.Parse(args[++i], CultureInfo.InvariantCulture); break;
        default: Console.Error.WriteLine($"unknown argument {args[i]}"); return 2;
    }

if (model is null)
{
    model = Path.Combine(FindRoot(), ".cache", "bench-llama-134m");
    var shape = new RandomCheckpoint.Shape(Vocab: 32000, Hidden: 768, Intermediate: 2048, Layers: 12, Heads: 12, KvHeads: 12);
    if (!File.Exists(Path.Combine(model, "model.safetensors")))
    {
        Console.Error.WriteLine($"writing random checkpoint ({shape.Parameters / 1e6:F0}M parameters) to {model}");
        RandomCheckpoint.Write(model, shape);
    }
}

var options = new ExecutorOptions { MaxBatchSize = 1, MaxNumTokens = 256, TokensPerBlock = 16, MaxTokensInPagedKvCache = promptLength + tokens + 32 };
using var backend = new CpuBackend(threads);
using var decoder = Decoder.Load(model, backend, LlmExecutor.DecoderLimitsFor(options));
using var executor = new LlmExecutor(decoder, options);
var prompt = new int[promptLength];
for (int i = 0; i < prompt.Length; i++)
    prompt[i] = 100 + i;

await Decode(8);
var rates = new List<double>();
for (int run = 0; run < 5; run++)
    rates.Add(await Decode(tokens));
rates.Sort();
double tokensPerSecond = rates[rates.Count / 2];
double stepsPerSecond = DecoderStepsPerSecond(decoder, backend, promptLength, tokens);

// Bytes one decode step reads: every weight but the embedding table, of which it reads one row.
long embedBytes = (long)decoder.Config.VocabSize * decoder.Config.HiddenSize * 2;
long stepBytes = decoder.WeightBytes - embedBytes;
double bandwidth = MeasureReadBandwidth(backend.Threads);
double floorTokensPerSecond = bandwidth / stepBytes;
Console.WriteLine($"| machine | {CpuName()} ({Environment.ProcessorCount} cores) |");
Console.WriteLine($"| model | {Path.GetFileName(model)}: {decoder.WeightBytes / 1e6:F0} MB of weights, {stepBytes / 1e6:F0} MB read per token |");
Console.WriteLine($"| measured read bandwidth | {bandwidth / 1e9:F1} GB/s |");
Console.WriteLine($"| bandwidth floor | {floorTokensPerSecond:F1} tokens/s |");
Console.WriteLine($"| decode, batch 1 (median of 5) | {tokensPerSecond:F1} tokens/s |");
Console.WriteLine($"| fraction of floor | {tokensPerSecond / floorTokensPerSecond:P0} |");
Console.WriteLine($"| decoder step alone (no executor), batch 1 | {stepsPerSecond:F1} steps/s ({stepsPerSecond / floorTokensPerSecond:P0} of floor) |");
return 0;

// Decode rate of one request: tokens after the first (which includes the prefill) over the time they took.
async Task<double> Decode(int count)
{
    var request = new GenerationRequest { PromptIds = prompt, MaxTokens = count, EndId = -1, Streaming = true };
    var clock = Stopwatch.StartNew();
    TimeSpan first = TimeSpan.Zero;
    int received = 0;
    await foreach (var output in executor.Submit(request))
    {
        if (received == 0 && output.TokenIds[0].Length > 0)
            first = clock.Elapsed;
        received += output.TokenIds[0].Length;
    }
    return (received - 1) / (clock.Elapsed - first).TotalSeconds;
}

// Decode steps of one sequence straight through Decoder.Forward: what the kernels give without the executor around them.
static double DecoderStepsPerSecond(Decoder decoder, Turbine.Engine.Backends.IComputeBackend backend, int promptLength, int steps)
{
    const int blockSize = 16;
    var blocks = new Turbine.Engine.KvCache.KvCacheManager((promptLength + steps) / blockSize + 2, blockSize);
    using var storage = backend.AllocateKvCache(decoder.KvShape(blocks.TotalBlocks, blockSize));
    var sequence = new Turbine.Engine.KvCache.SequenceBlocks();
    blocks.TryReserve(sequence, promptLength + steps);
    var batch = decoder.CreateBatch();
    var logits = new float[decoder.Config.VocabSize];
    var prompt = new int[promptLength];
    for (int i = 0; i < prompt.Length; i++)
        prompt[i] = 100 + i;
    batch.Add(prompt, 0, sequence.Table, blockSize);
    decoder.Forward(batch, storage, logits);
    var token = new int[1];
    var clock = Stopwatch.StartNew();
    for (int i = 0; i < steps; i++)
    {
        batch.Clear();
        token[0] = 100 + i % 1000;
        batch.Add(token, promptLength + i, sequence.Table, blockSize);
        decoder.Forward(batch, storage);
        decoder.ArgMaxLogits(1, token);
    }
    return steps / clock.Elapsed.TotalSeconds;
}

static unsafe double MeasureReadBandwidth(int threads)
{
    const long bytes = 1L << 30;
    var buffer = (float*)NativeMemory.AlignedAlloc((nuint)bytes, 64);
    try
    {
        new Span<byte>(buffer, (int)bytes).Fill(1);
        long floats = bytes / sizeof(float);
        double best = 0;
        for (int rep = 0; rep < 5; rep++)
        {
            var sw = Stopwatch.StartNew();
            Parallel.For(0, threads, new ParallelOptions { MaxDegreeOfParallelism = threads }, t =>
            {
                long chunk = floats / threads;
                var span = new ReadOnlySpan<float>(buffer + t * chunk, (int)chunk);
                System.Numerics.Tensors.TensorPrimitives.Sum(span);
            });
            best = Math.Max(best, bytes / sw.Elapsed.TotalSeconds);
        }
        return best;
    }
    finally
    {
        NativeMemory.AlignedFree(buffer);
    }
}

static string CpuName()
{
    foreach (var line in File.Exists("/proc/cpuinfo") ? File.ReadLines("/proc/cpuinfo") : [])
        if (line.StartsWith("model name", StringComparison.Ordinal))
            return line[(line.IndexOf(':') + 1)..].Trim();
    return RuntimeInformation.ProcessArchitecture.ToString();
}

static string FindRoot()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        if (File.Exists(Path.Combine(dir.FullName, "Turbine.slnx")))
            return dir.FullName;
    return Environment.CurrentDirectory;
}
