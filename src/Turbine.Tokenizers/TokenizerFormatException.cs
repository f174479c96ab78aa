namespace Turbine.Tokenizers;

/// <summary>A tokenizer file is missing, is not valid JSON, or describes something this library cannot read.</summary>
/// <remarks>The message names the file and what is wrong with it.</remarks>
public sealed class TokenizerFormatException : Exception
{
    /// <summary>Creates the exception for <paramref name="path"/>.</summary>
    public TokenizerFormatException(string path, string problem, Exception? inner = null)
        : base($"{path}: {problem}", inner)
    {
        FilePath = path;
    }

    /// <summary>The file that could not be read.</summary>
    public string FilePath { get; }
}
