namespace Turbine.Core.Checkpoints;

/// <summary>A checkpoint that cannot be used, with the file and (where one is at fault) the tensor named.</summary>
public sealed class CheckpointException : Exception
{
    /// <summary>Creates the error for <paramref name="file"/> and optionally one <paramref name="tensor"/>.</summary>
    public CheckpointException(string file, string? tensor, string message, Exception? inner = null)
        : base(Format(file, tensor, message), inner)
    {
        File = file;
        Tensor = tensor;
    }

    /// <summary>The file at fault.</summary>
    public string File { get; }

    /// <summary>The tensor at fault, when the error concerns one.</summary>
    public string? Tensor { get; }

    private static string Format(string file, string? tensor, string message) =>
        tensor is null ? $"{file}: {message}" : $"{file}: tensor '{tensor}': {message}";
}
