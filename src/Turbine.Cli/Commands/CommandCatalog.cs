using System.CommandLine;

namespace Turbine.Cli.Commands;

/// <summary>Every subcommand of the turbine CLI, in the order help lists them.</summary>
internal static class CommandCatalog
{
    public static IEnumerable<Command> All()
    {
        yield return RunCommand.Create();
        yield return TokenizeCommand.Create();
        yield return RepoCommand.Create();
        yield return ServeCommand.Create();
        yield return ClientCommand.Create();
        yield return BenchCommand.Create();
    }
}
