using System.Runtime.CompilerServices;

// The CLI tests drive the bench commands themselves, which are internal like every command.
[assembly: InternalsVisibleTo("Turbine.Cli.Tests")]
