namespace Turbine.Server.Repository;

/// <summary>What a load or rescan of the repository changed.</summary>
/// <param name="Loaded">Models newly loaded.</param>
/// <param name="Reloaded">Models whose config or versions changed and were loaded again.</param>
/// <param name="Unloaded">Models no longer served (their directory disappeared).</param>
/// <param name="Failed">Models that could not be loaded, with the reason; a model that was serving keeps its old state.</param>
public sealed record RepositoryChanges(
    IReadOnlyList<string> Loaded,
    IReadOnlyList<string> Reloaded,
    IReadOnlyList<string> Unloaded,
    IReadOnlyDictionary<string, string> Failed)
{
    /// <summary>Whether anything changed or failed.</summary>
    public bool IsEmpty => Loaded.Count == 0 && Reloaded.Count == 0 && Unloaded.Count == 0 && Failed.Count == 0;
}
