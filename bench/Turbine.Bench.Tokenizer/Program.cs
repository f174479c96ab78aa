using System.Diagnostics;
using System.Text;
using Turbine.Tokenizers;

// Single-thread encoding throughput of the three reference vocabularies over the seed documents.
// Usage: dotnet run -c Release --project bench/Turbine.Bench.Tokenizer -- SEEDS_DIR [TOKENIZERS_DIR]
// TOKENIZERS_DIR defaults to .cache/tokenizers under the repository (filled by tools/fetch-test-data.sh).
if (args.Length is < 1 or > 2)
{
    Console.Error.WriteLine("usage: Turbine.Bench.Tokenizer SEEDS_DIR [TOKENIZERS_DIR]");
    return 2;
}
var seedFiles = Directory.GetFiles(args[0], "*.txt");
Array.Sort(seedFiles, StringComparer.Ordinal);
if (seedFiles.Length == 0)
{
    Console.Error.WriteLine($"no *.txt files in {args[0]}");
    return 2;
}
var documents = Array.ConvertAll(seedFiles, File.ReadAllText);
long corpusBytes = 0;
foreach (var document in documents) corpusBytes += Encoding.UTF8.GetByteCount(document);
var tokenizersDir = args.Length > 1 ? args[1] : Path.Combine(FindRepoRoot(), ".cache", "tokenizers");

const int WarmupPasses = 5;
const int Runs = 9;
// Each timed run encodes the corpus this many times so that it lasts long enough to time reliably.
const int PassesPerRun = 10;

Console.WriteLine($"corpus: {documents.Length} documents, {corpusBytes / 1e6:F3} MB UTF-8; {Runs} runs of {PassesPerRun} passes after {WarmupPasses} warm-up passes; one thread");
Console.WriteLine();
Console.WriteLine($"{"vocabulary",-12} {"tokens",10} {"median MB/s",12} {"min MB/s",10} {"max MB/s",10} {"Mtokens/s",10}");
foreach (var name in new[] { "llama2", "llama3", "qwen3" })
{
    var tokenizer = Tokenizer.FromDirectory(Path.Combine(tokenizersDir, name));
    var ids = new List<int>(1 << 16);
    long tokens = 0;
    for (var pass = 0; pass < WarmupPasses; pass++)
    {
        tokens = 0;
        foreach (var document in documents)
        {
            ids.Clear();
            tokenizer.Encode(document, addSpecialTokens: false, ids);
            tokens += ids.Count;
        }
    }
    var rates = new double[Runs];
    for (var run = 0; run < Runs; run++)
    {
        var watch = Stopwatch.StartNew();
        for (var pass = 0; pass < PassesPerRun; pass++)
        {
            foreach (var document in documents)
            {
                ids.Clear();
                tokenizer.Encode(document, addSpecialTokens: false, ids);
            }
        }
        rates[run] = corpusBytes * PassesPerRun / watch.Elapsed.TotalSeconds / 1e6;
    }
    Array.Sort(rates);
    var median = rates[Runs / 2];
    Console.WriteLine($"{name,-12} {tokens,10} {median,12:F2} {rates[0],10:F2} {rates[^1],10:F2} {median * 1e6 / corpusBytes * tokens / 1e6,10:F2}");
}
return 0;

static string FindRepoRoot()
{
    for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        if (File.Exists(Path.Combine(dir.FullName, "Turbine.slnx"))) return dir.FullName;
    throw new InvalidOperationException("no Turbine.slnx above the benchmark; pass TOKENIZERS_DIR");
}
