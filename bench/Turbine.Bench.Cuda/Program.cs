using System.Diagnostics;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Turbine.Backends.Cuda;
using Turbine.Engine.Backends;
using Turbine.Engine.Executor;
using Turbine.Engine.KvCache;
using Turbine.Engine.Models;

// The CUDA backend on a GPU machine (run by tools/gpu/check_cuda.sh):
//   ops                                           every backend operation on random inputs against the CPU backend
//   fixtures [--device cpu|tee] DIR...            greedy ids and last logits of tests/fixtures/models/* against reference.json
//   teacher --model DIR --ids FILE --out PREFIX [--batch B]   teacher-forced logits of int32 ids, by one prefill step and by decode
//                                                 steps of B identical sequences (B > 8 takes the GEMM path; the last one's logits are kept)
//   perf --model DIR [--batch 1] [--input 128] [--output 128] [--ttft 2048]   throughput through the executor
//   profile --model DIR [--batch 1] [--context 128] [--steps 16]              per-operation time of decode steps (CUDA events)
//   profile --model DIR --prompt N [--batch B]    per-operation time of one prompt step of B sequences of N tokens
//   attention [--reps 300] [--case f16,32,8,128,64,1024]   decode attention alone on a random KV cache: µs per call, K+V GB/s
if (args.Length == 0)
{
    Console.Error.WriteLine("usage: ops | fixtures DIR... | teacher ... | perf ... | profile ... | attention [--reps N]");
    return 2;
}
var named = new Dictionary<string, string>();
var positional = new List<string>();
for (int i = 1; i < args.Length; i++)
    if (args[i].StartsWith("--", StringComparison.Ordinal))
        named[args[i][2..]] = args[++i];
    else
        positional.Add(args[i]);
int Int(string name, int fallback) => named.TryGetValue(name, out var v) ? int.Parse(v, CultureInfo.InvariantCulture) : fallback;

return args[0] switch
{
    "fixtures" => await Fixtures(positional, named.GetValueOrDefault("device", "cuda")),
    "ops" => Turbine.Bench.Cuda.Ops.Run(),
    "teacher" => Teacher(named["model"], named["ids"], named["out"], Int("batch", 1)),
    "perf" => await Perf(named["model"], Int("batch", 1), Int("input", 128), Int("output", 128), Int("ttft", 0)),
    "profile" when named.ContainsKey("prompt") => ProfilePrompt(named["model"], Int("batch", 1), Int("prompt", 128)),
    "profile" => Profile(named["model"], Int("batch", 1), Int("context", 128), Int("steps", 16)),
    "attention" => Turbine.Bench.Cuda.AttentionBench.Run(Int("reps", 300), named.GetValueOrDefault("case")),
    _ => 2,
};

static async Task<int> Fixtures(List<string> dirs, string device)
{
    int failures = 0;
    // --device cpu runs the same harness on the CPU backend, the reference the CUDA backend must agree with.
    // --device tee runs both and prints the operations whose outputs differ.
    using IComputeBackend backend = device switch
    {
        "cpu" => new Turbine.Backends.Cpu.CpuBackend(0),
        "tee" => new Turbine.Bench.Cuda.TeeBackend(new Turbine.Backends.Cpu.CpuBackend(0), new CudaBackend()),
        _ => new CudaBackend(),
    };
    Console.WriteLine(backend is CudaBackend gpu ? $"device: {gpu.DeviceDescription}; options: {gpu.Options}" : "device: cpu");
    foreach (var dir in dirs)
    {
        var name = Path.GetFileName(Path.TrimEndingDirectorySeparator(dir));
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "reference.json")));
        var cases = doc.RootElement.GetProperty("cases").EnumerateArray()
            .Select(c => (Ids: c.GetProperty("prompt_ids").Deserialize<int[]>()!, Logits: c.GetProperty("last_logits").Deserialize<float[]>()!,
                Greedy: c.GetProperty("greedy_ids").Deserialize<int[]>()!))
            .ToArray();
        double worst = 0;
        using (var decoder = Decoder.Load(dir, backend, new DecoderLimits(64, 4)))
        {
            var storage = backend.AllocateKvCache(decoder.KvShape(64, 4));
            var blocks = new KvCacheManager(64, 4);
            foreach (var c in cases)
            {
                var seq = new SequenceBlocks();
                blocks.TryReserve(seq, c.Ids.Length);
                var batch = decoder.CreateBatch();
                batch.Add(c.Ids, 0, seq.Table, blocks.BlockSize);
                var logits = new float[decoder.Config.VocabSize];
                decoder.Forward(batch, storage, logits);
                blocks.Release(seq);
                worst = Math.Max(worst, RelativeL2(logits, c.Logits));
            }
            storage.Dispose();
        }
        int single = 0, packed = 0;
        using (var decoder = Decoder.Load(dir, backend, new DecoderLimits(64, 4)))
        using (var executor = new LlmExecutor(decoder, new ExecutorOptions { MaxNumTokens = 64, MaxBatchSize = 4, TokensPerBlock = 4, MaxTokensInPagedKvCache = 256, MaxSeqLen = 128 }))
            foreach (var c in cases)
                single += (await FinalIds(executor.Submit(new GenerationRequest { PromptIds = c.Ids, MaxTokens = c.Greedy.Length, EndId = -1 }))).SequenceEqual(c.Greedy) ? 1 : 0;
        // 16 tokens per step: chunked prefill across steps, prompts of different lengths packed together.
        bool packable = name != "llama-dynamic";
        if (packable)
        {
            using var decoder = Decoder.Load(dir, backend, new DecoderLimits(16, 4));
            using var executor = new LlmExecutor(decoder, new ExecutorOptions { MaxNumTokens = 16, MaxBatchSize = 4, TokensPerBlock = 4, MaxTokensInPagedKvCache = 512 });
            var runs = cases.Select(c => FinalIds(executor.Submit(new GenerationRequest { PromptIds = c.Ids, MaxTokens = 24, EndId = -1 }))).ToArray();
            for (int i = 0; i < runs.Length; i++)
                packed += (await runs[i]).SequenceEqual(cases[i].Greedy) ? 1 : 0;
        }
        bool ok = single == cases.Length && (!packable || packed == cases.Length) && worst < 1e-3;
        failures += ok ? 0 : 1;
        Console.WriteLine($"{(ok ? "PASS" : "FAIL")} {name,-18} last-logits max rel L2 {worst:E2}  greedy one-at-a-time {single}/{cases.Length}  packed+chunked {(packable ? $"{packed}/{cases.Length}" : "n/a")}");
    }
    return failures == 0 ? 0 : 1;
}

static int Teacher(string model, string idsPath, string outPrefix, int batchSize)
{
    var bytes = File.ReadAllBytes(idsPath);
    var ids = MemoryMarshal.Cast<byte, int>(bytes).ToArray();
    int n = ids.Length;
    using var backend = new CudaBackend();
    Console.WriteLine($"device: {backend.DeviceDescription}; options: {backend.Options}");
    var load = Stopwatch.StartNew();
    using var decoder = Decoder.Load(model, backend, new DecoderLimits(Math.Max(n, batchSize), batchSize, Math.Max(n, batchSize)));
    Console.WriteLine($"loaded {backend.WeightBytes / 1e9:F2} GB of weights in {load.Elapsed.TotalSeconds:F1} s");
    int vocab = decoder.Config.VocabSize;
    const int blockSize = 16;
    int blockCount = (n + blockSize - 1) / blockSize;
    using var storage = backend.AllocateKvCache(decoder.KvShape(blockCount * batchSize, blockSize));
    var tables = Enumerable.Range(0, batchSize).Select(s => Enumerable.Range(s * blockCount, blockCount).ToArray()).ToArray();
    var table = tables[0];
    var batch = decoder.CreateBatch();

    var all = new float[(long)n * vocab];
    batch.Clear();
    batch.Add(ids, 0, table, blockSize, allLogits: true);
    decoder.Forward(batch, storage, all);
    File.WriteAllBytes(outPrefix + ".prefill.f32", MemoryMarshal.AsBytes(all.AsSpan()).ToArray());

    // Decode steps replay CUDA graphs from the third step on, so this also checks graph replay against transformers.
    var rows = new float[(long)batchSize * vocab];
    for (int i = 0; i < n; i++)
    {
        batch.Clear();
        for (int s = 0; s < batchSize; s++)
            batch.Add(ids.AsSpan(i, 1), i, tables[s], blockSize);
        decoder.Forward(batch, storage, rows);
        rows.AsSpan((batchSize - 1) * vocab, vocab).CopyTo(all.AsSpan(i * vocab, vocab));
    }
    File.WriteAllBytes(outPrefix + ".decode.f32", MemoryMarshal.AsBytes(all.AsSpan()).ToArray());
    Console.WriteLine($"wrote {outPrefix}.prefill.f32 and {outPrefix}.decode.f32 ({n} × {vocab})");
    return 0;
}

static async Task<int> Perf(string model, int batchSize, int input, int output, int ttftTokens)
{
    using var backend = new CudaBackend();
    var options = new ExecutorOptions
    {
        MaxBatchSize = batchSize, MaxNumTokens = Math.Max(8192, ttftTokens), TokensPerBlock = 16,
        MaxTokensInPagedKvCache = Math.Max(batchSize * (input + output + 32), ttftTokens + 64),
    };
    var load = Stopwatch.StartNew();
    using var decoder = Decoder.Load(model, backend, LlmExecutor.DecoderLimitsFor(options));
    double loadSeconds = load.Elapsed.TotalSeconds;
    using var executor = new LlmExecutor(decoder, options);
    var random = new Random(7);
    int[] Prompt(int length) => [.. Enumerable.Range(0, length).Select(_ => random.Next(100, Math.Min(30000, decoder.Config.VocabSize)))];

    await Generate([Prompt(input)], 4);
    var prompts = Enumerable.Range(0, batchSize).Select(_ => Prompt(input)).ToArray();
    var (total, firstAll) = await Generate(prompts, output);
    double rate = (double)batchSize * output / total;
    double decodeRate = (double)batchSize * (output - 1) / (total - firstAll);
    Console.WriteLine($"| {Path.GetFileName(model)} | batch {batchSize} | {input} in / {output} out | {rate:F1} output tok/s end to end | "
        + $"{decodeRate:F1} tok/s after the last first token | {total:F2} s | load {loadSeconds:F1} s |");
    if (ttftTokens > 0)
    {
        var times = new List<double>();
        for (int r = 0; r < 4; r++)
        {
            var (t, _) = await Generate([Prompt(ttftTokens)], 1);
            times.Add(t);
        }
        times.RemoveAt(0);
        times.Sort();
        Console.WriteLine($"| TTFT {ttftTokens} tokens (median of 3, after one warm-up) | {times[1] * 1000:F1} ms |");
    }
    return 0;

    async Task<(double Total, double FirstAll)> Generate(int[][] batch, int tokens)
    {
        var clock = Stopwatch.StartNew();
        var firsts = new double[batch.Length];
        var runs = batch.Select((p, i) => Task.Run(async () =>
        {
            await foreach (var o in executor.Submit(new GenerationRequest { PromptIds = p, MaxTokens = tokens, EndId = -1, Streaming = true }))
                if (firsts[i] == 0 && o.TokenIds[0].Length > 0)
                    firsts[i] = clock.Elapsed.TotalSeconds;
        })).ToArray();
        await Task.WhenAll(runs);
        return (clock.Elapsed.TotalSeconds, firsts.Max());
    }
}

static int Profile(string model, int batchSize, int context, int steps)
{
    using var backend = new CudaBackend();
    using var decoder = Decoder.Load(model, backend, new DecoderLimits(Math.Max(batchSize, 256), batchSize));
    const int blockSize = 16;
    int perSeq = (context + steps + blockSize) / blockSize + 1;
    using var storage = backend.AllocateKvCache(decoder.KvShape(perSeq * batchSize, blockSize));
    var tables = Enumerable.Range(0, batchSize).Select(s => Enumerable.Range(s * perSeq, perSeq).ToArray()).ToArray();
    var batch = decoder.CreateBatch();
    var ids = new int[batchSize];
    var token = new[] { 1000 };
    // The cache content does not change the time; positions before `context` are treated as filled.
    double Step(int position)
    {
        batch.Clear();
        for (int s = 0; s < batchSize; s++)
            batch.Add(token, position, tables[s], blockSize);
        var sw = Stopwatch.StartNew();
        // As the executor runs a greedy step: only the argmax ids come back.
        decoder.Forward(batch, storage);
        decoder.ArgMaxLogits(batchSize, ids);
        return sw.Elapsed.TotalMilliseconds;
    }
    for (int i = 0; i < 3; i++)
        Step(context + i);
    // First without events: the step as the executor sees it (GPU time plus launch gaps plus the argmax ids' download).
    var raw = new List<double>();
    for (int i = 0; i < steps; i++)
        raw.Add(Step(context + i));
    raw.Sort();
    double rawMs = raw[steps / 2];
    Console.WriteLine($"decode step, batch {batchSize}, context {context}: {rawMs:F3} ms median of {steps} without events = {batchSize * 1000 / rawMs:F1} tok/s (Decoder.Forward, argmax ids downloaded)");
    backend.Profiling = true;
    Step(context);
    backend.Synchronize();
    backend.ResetProfile();
    var wall = new List<double>();
    for (int i = 0; i < steps; i++)
        wall.Add(Step(context + i));
    wall.Sort();
    PrintProfile(backend, steps, $"wall median {wall[steps / 2]:F3} ms, ");
    return 0;
}

// The profiler's totals per step, largest first, as a table.
static void PrintProfile(CudaBackend backend, int steps, string wall)
{
    var profile = backend.Profile.OrderByDescending(p => p.Value.Milliseconds).ToArray();
    double sum = profile.Sum(p => p.Value.Milliseconds) / steps;
    Console.WriteLine($"with events around every operation: {wall}sum of operation times {sum:F3} ms");
    Console.WriteLine("| operation | ms / step | calls / step | share |");
    foreach (var (name, (ms, calls)) in profile)
        Console.WriteLine($"| {name} | {ms / steps:F3} | {calls / steps} | {ms / steps / sum:P1} |");
}

static int ProfilePrompt(string model, int batchSize, int prompt)
{
    using var backend = new CudaBackend();
    using var decoder = Decoder.Load(model, backend, new DecoderLimits(batchSize * prompt, batchSize));
    const int blockSize = 16;
    int perSeq = (prompt + blockSize - 1) / blockSize;
    using var storage = backend.AllocateKvCache(decoder.KvShape(perSeq * batchSize, blockSize));
    var batch = decoder.CreateBatch();
    var ids = new int[batchSize];
    var tokens = Enumerable.Range(0, prompt).Select(i => 1000 + i).ToArray();
    double Step()
    {
        batch.Clear();
        for (int s = 0; s < batchSize; s++)
            batch.Add(tokens, 0, Enumerable.Range(s * perSeq, perSeq).ToArray(), blockSize);
        var sw = Stopwatch.StartNew();
        decoder.Forward(batch, storage);
        decoder.ArgMaxLogits(batchSize, ids);
        return sw.Elapsed.TotalMilliseconds;
    }
    Step();
    var raw = new List<double>();
    for (int i = 0; i < 3; i++)
        raw.Add(Step());
    raw.Sort();
    Console.WriteLine($"prompt step, {batchSize} × {prompt} tokens: {raw[1]:F1} ms median of 3 without events");
    backend.Profiling = true;
    Step();
    backend.Synchronize();
    backend.ResetProfile();
    Step();
    PrintProfile(backend, 1, "");
    return 0;
}

static async Task<int[]> FinalIds(IAsyncEnumerable<GenerationOutput> outputs)
{
    int[] ids = [];
    await foreach (var o in outputs)
        ids = o.TokenIds[0];
    return ids;
}

static double RelativeL2(ReadOnlySpan<float> actual, ReadOnlySpan<float> expected)
{
    double diff = 0, norm = 0;
    for (int i = 0; i < expected.Length; i++)
    {
        double d = actual[i] - expected[i];
        diff += d * d;
        norm += (double)expected[i] * expected[i];
    }
    return Math.Sqrt(diff / norm);
}
