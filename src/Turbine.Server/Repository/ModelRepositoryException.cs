namespace Turbine.Server.Repository;

/// <summary>
/// A model in the repository cannot be served; the message names the config file, the key at fault and, where the
/// key takes a fixed set of values, the values allowed.
/// </summary>
public sealed class ModelRepositoryException : Exception
{
    /// <summary>Creates the error for <paramref name="key"/> of <paramref name="file"/>.</summary>
    public ModelRepositoryException(string file, string key, string problem, Exception? inner = null)
        : base(key.Length == 0 ? $"{file}: {problem}" : $"{file}: {key}: {problem}", inner)
    {
        File = file;
        Key = key;
        Problem = problem;
    }

    /// <summary>Wraps a syntax error of a config.pbtxt, keeping its file:line:column message.</summary>
    public ModelRepositoryException(Configuration.TextFormatException syntaxError)
        : base(syntaxError.Message, syntaxError)
    {
        File = syntaxError.File;
        Key = "";
        Problem = syntaxError.Problem;
    }

    /// <summary>The config.pbtxt (or model directory) at fault.</summary>
    public string File { get; }

    /// <summary>The config key at fault, e.g. <c>parameters.batching_strategy</c>; empty when the whole file is.</summary>
    public string Key { get; }

    /// <summary>What was wrong, without the file and key prefix.</summary>
    public string Problem { get; }
}
