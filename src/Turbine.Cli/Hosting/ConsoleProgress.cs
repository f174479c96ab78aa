using Spectre.Console;

namespace Turbine.Cli.Hosting;

/// <summary>Progress bars on standard error, so that standard output stays clean for results and JSON.</summary>
internal static class ConsoleProgress
{
    /// <summary>The console that progress and diagnostics are written to.</summary>
    public static IAnsiConsole Error { get; } = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });

    /// <summary>Runs <paramref name="work"/> with one progress bar titled <paramref name="title"/>, reported as (done, total).</summary>
    public static T Run<T>(string title, Func<IProgress<(int Done, int Total)>, T> work)
    {
        T result = default!;
        Error.Progress()
            .AutoClear(true)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ElapsedTimeColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(title, maxValue: 1);
                var progress = new Progress<(int Done, int Total)>(p =>
                {
                    task.MaxValue = Math.Max(1, p.Total);
                    task.Value = p.Done;
                });
                result = work(progress);
                task.Value = task.MaxValue;
            });
        return result;
    }
}
