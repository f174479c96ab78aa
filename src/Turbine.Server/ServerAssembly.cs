namespace Turbine.Server;

/// <summary>Marks the Triton-compatible serving layer: model repository, HTTP/gRPC frontends, OpenAI API and metrics.</summary>
public static class ServerAssembly
{
    /// <summary>The version reported in server metadata.</summary>
    public const string Version = "0.1.0";
}
