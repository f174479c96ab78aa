namespace Turbine.Backends.Cuda;

/// <summary>A CUDA driver, NVRTC or cuBLAS call failed; the message names the call and the library's error.</summary>
public sealed class CudaException : Exception
{
    /// <summary>Creates an exception with <paramref name="message"/>.</summary>
    public CudaException(string message) : base(message)
    {
    }

    /// <summary>Creates an exception with <paramref name="message"/> caused by <paramref name="inner"/>.</summary>
    public CudaException(string message, Exception inner) : base(message, inner)
    {
    }

    /// <summary>The library's status code, when one was returned.</summary>
    public int Status { get; init; }
}
