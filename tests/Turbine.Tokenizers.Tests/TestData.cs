using System.Collections.Concurrent;
using System.Text.Json;

namespace Turbine.Tokenizers.Tests;

/// <summary>Locates the repository, the fetched vocabularies and the reference fixtures.</summary>
internal static class TestData
{
    public static readonly string[] Vocabularies = ["llama2", "llama3", "qwen3"];

    private static readonly ConcurrentDictionary<string, Tokenizer> Tokenizers = new();

    public static string RepoRoot { get; } = FindRepoRoot();

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Turbine.slnx"))) return dir.FullName;
        throw new InvalidOperationException($"no Turbine.slnx above {AppContext.BaseDirectory}");
    }

    /// <summary>The real vocabulary <paramref name="name"/>; fails (never skips) when it has not been fetched.</summary>
    public static Tokenizer Vocabulary(string name) => Tokenizers.GetOrAdd(name, n =>
    {
        var dir = Path.Combine(RepoRoot, ".cache", "tokenizers", n);
        if (!File.Exists(Path.Combine(dir, "tokenizer.json")))
            Assert.Fail($"vocabulary {n} is missing from {dir}: run tools/fetch-test-data.sh");
        return Tokenizer.FromDirectory(dir);
    });

    public static Tokenizer Tiny() => Tokenizers.GetOrAdd("tiny", _ => Tokenizer.FromDirectory(TinyModelDirectories().First()));

    public static IEnumerable<string> TinyModelDirectories() =>
        Directory.GetDirectories(Path.Combine(RepoRoot, "tests", "fixtures", "models")).Order(StringComparer.Ordinal);

    public sealed record ReferenceCase(string Text, int[] Ids, int[] IdsWithSpecial, string Decoded, string DecodedSkipSpecial);

    private static readonly ConcurrentDictionary<string, ReferenceCase[]> Cases = new();

    public static ReferenceCase[] ReferenceCases(string name) => Cases.GetOrAdd(name, n =>
    {
        using var doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(RepoRoot, "tests", "fixtures", "tokenizers", n + ".json")));
        return doc.RootElement.GetProperty("cases").EnumerateArray().Select(c => new ReferenceCase(
            c.GetProperty("text").GetString()!,
            c.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
            c.GetProperty("ids_with_special").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
            c.GetProperty("decoded").GetString()!,
            c.GetProperty("decoded_skip_special").GetString()!)).ToArray();
    });

    /// <summary>(vocabulary, case index) for every reference case of every vocabulary.</summary>
    public static TheoryData<string, int> AllCases()
    {
        var data = new TheoryData<string, int>();
        foreach (var name in Vocabularies)
            for (var i = 0; i < ReferenceCases(name).Length; i++) data.Add(name, i);
        return data;
    }

    public static string Show(string text) => JsonSerializer.Serialize(text);
}
