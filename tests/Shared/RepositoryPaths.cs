namespace Turbine.Tests;

/// <summary>Locates committed fixtures from the test binary's folder.</summary>
internal static class RepositoryPaths
{
    public static string Root { get; } = FindRoot();

    public static string Fixture(params string[] parts) => Path.Combine([Root, "tests", "fixtures", .. parts]);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Turbine.slnx")))
                return dir.FullName;
        throw new InvalidOperationException("cannot find the repository root (Turbine.slnx) above " + AppContext.BaseDirectory);
    }
}
