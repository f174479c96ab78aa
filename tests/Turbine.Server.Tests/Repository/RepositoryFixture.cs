namespace Turbine.Server.Tests.Repository;

/// <summary>A scratch directory with an engine and tokenizer directory and an empty model repository.</summary>
internal sealed class RepositoryFixture : IDisposable
{
    public RepositoryFixture()
    {
        Root = Path.Combine(Path.GetTempPath(), "turbine-repo-tests-" + Guid.NewGuid().ToString("N"));
        EngineDir = Path.Combine(Root, "hf model");
        TokenizerDir = Path.Combine(Root, "tokenizer");
        RepositoryDir = Path.Combine(Root, "repo");
        Directory.CreateDirectory(EngineDir);
        Directory.CreateDirectory(TokenizerDir);
        Directory.CreateDirectory(RepositoryDir);
    }

    public string Root { get; }
    public string EngineDir { get; }
    public string TokenizerDir { get; }
    public string RepositoryDir { get; }

    /// <summary>Writes a model directory with its config and the given version directories.</summary>
    public string AddModel(string name, string config, params int[] versions)
    {
        string dir = Path.Combine(RepositoryDir, name);
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "config.pbtxt"), config.Replace("ENGINE_DIR", EngineDir).Replace("TOKENIZER_DIR", TokenizerDir));
        foreach (int version in versions) Directory.CreateDirectory(Path.Combine(dir, version.ToString()));
        return Path.Combine(dir, "config.pbtxt");
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
            // A leftover temp directory is harmless.
        }
    }
}
