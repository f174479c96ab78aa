using System.CommandLine;

namespace Turbine.Cli.Tests;

/// <summary>Tests that run commands own the process's console, so they run one at a time.</summary>
[CollectionDefinition(nameof(ConsoleCollection), DisableParallelization = true)]
public sealed class ConsoleCollection;

/// <summary>Runs a command in-process with the console captured.</summary>
internal static class ConsoleCapture
{
    /// <summary>The command's exit code and what it wrote to standard output and standard error.</summary>
    public static async Task<(int Exit, string Out, string Error)> InvokeAsync(Command command, params string[] args)
    {
        var (originalOut, originalError) = (Console.Out, Console.Error);
        var (output, error) = (new StringWriter(), new StringWriter());
        Console.SetOut(output);
        Console.SetError(error);
        try
        {
            int exit = await command.Parse(args).InvokeAsync();
            return (exit, output.ToString(), error.ToString());
        }
        finally
        {
            Console.SetOut(originalOut);
            Console.SetError(originalError);
        }
    }
}
