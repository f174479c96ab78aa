namespace Turbine.Server.Configuration;

/// <summary>
/// A protobuf text-format document that cannot be read, with the place it went wrong so a user can fix a
/// config.pbtxt without guessing.
/// </summary>
public sealed class TextFormatException : Exception
{
    /// <summary>Creates the error for <paramref name="file"/> at a 1-based line and column.</summary>
    public TextFormatException(string file, int line, int column, string problem)
        : base($"{file}:{line}:{column}: {problem}")
    {
        File = file;
        Line = line;
        Column = column;
        Problem = problem;
    }

    /// <summary>The file (or name given for in-memory text) being parsed.</summary>
    public string File { get; }

    /// <summary>1-based line of the offending token.</summary>
    public int Line { get; }

    /// <summary>1-based column of the offending token.</summary>
    public int Column { get; }

    /// <summary>What was wrong, without the location prefix.</summary>
    public string Problem { get; }
}
