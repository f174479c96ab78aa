using Turbine.Server.Models;

namespace Turbine.Server.Hosting;

/// <summary>How a Turbine server listens and what it allows (tritonserver's flags).</summary>
public sealed record ServerOptions
{
    /// <summary>Address to bind (0.0.0.0 listens on every interface, as tritonserver does).</summary>
    public string Host { get; init; } = "0.0.0.0";
    /// <summary>KServe v2 HTTP and OpenAI port; 0 picks a free one.</summary>
    public int HttpPort { get; init; } = 8000;
    /// <summary>gRPC port (served by the gRPC frontend when present).</summary>
    public int GrpcPort { get; init; } = 8001;
    /// <summary>Prometheus metrics port; 0 picks a free one, a negative value disables metrics.</summary>
    public int MetricsPort { get; init; } = 8002;
    /// <summary>Bearer token required on /v1 when set.</summary>
    public string? ApiKey { get; init; }
    /// <summary>How long shutdown waits for in-flight requests.</summary>
    public TimeSpan ExitTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Request bodies larger than this are refused with 413.</summary>
    public long MaxRequestBodyBytes { get; init; } = 64L << 20;
    /// <summary>Log every request.</summary>
    public bool LogVerbose { get; init; }
    /// <summary>How models may be loaded and unloaded.</summary>
    public ModelControlMode ModelControlMode { get; init; } = ModelControlMode.None;
}
