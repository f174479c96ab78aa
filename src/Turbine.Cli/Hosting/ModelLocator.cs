namespace Turbine.Cli.Hosting;

/// <summary>Finds the bundled demo model, the default when no model is named.</summary>
internal static class ModelLocator
{
    private const string BundledModel = "models/demo";

    /// <summary>
    /// The bundled model's directory: under $TURBINE_HOME (set by the ./turbine script), else the first
    /// models/demo above the current directory or the executable.
    /// </summary>
    public static string DefaultModel()
    {
        var home = Environment.GetEnvironmentVariable("TURBINE_HOME");
        if (!string.IsNullOrEmpty(home) && Directory.Exists(Path.Combine(home, BundledModel)))
            return Path.Combine(home, BundledModel);
        foreach (var start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                var candidate = Path.Combine(dir.FullName, BundledModel);
                if (File.Exists(Path.Combine(candidate, "config.json")))
                    return candidate;
            }
        throw new DirectoryNotFoundException($"no --model given and the bundled model ({BundledModel}) was not found; pass --model DIR");
    }
}
