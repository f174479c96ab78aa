namespace Turbine.Server.Models;

/// <summary>One inference request, whatever frontend it came through.</summary>
public sealed class InferRequest
{
    /// <summary>The client's request id, echoed in responses.</summary>
    public string? Id { get; init; }
    /// <summary>Inputs by name.</summary>
    public required IReadOnlyDictionary<string, InferTensor> Inputs { get; init; }
    /// <summary>Outputs the client asked for; null or empty means all.</summary>
    public IReadOnlyCollection<string>? RequestedOutputs { get; init; }
    /// <summary>Ask a decoupled model for one response per step (generate_stream) rather than one in total.</summary>
    public bool Streaming { get; init; }

    /// <summary>When the request arrived (Stopwatch ticks), for latency metrics.</summary>
    public long StartTicks { get; init; } = System.Diagnostics.Stopwatch.GetTimestamp();
    /// <summary>Time the model spent preparing inputs and outputs, for the statistics extension.</summary>
    public InferTimings Timings { get; } = new();

    /// <summary>The input named <paramref name="name"/>, if given.</summary>
    public InferTensor? Input(string name) => Inputs.TryGetValue(name, out var t) ? t : null;

    /// <summary>The input named <paramref name="name"/>, or a 400 when missing.</summary>
    public InferTensor Required(string name) => Input(name)
        ?? throw new InferenceException(InferenceError.InvalidArgument, $"expected input '{name}' is missing");

    /// <summary>The first element of an integer input, or <paramref name="fallback"/>.</summary>
    public long Int(string name, long fallback) => Input(name) is { Count: > 0 } t ? t.GetInt64(0) : fallback;

    /// <summary>The first element of an integer input, or null.</summary>
    public long? IntOrNull(string name) => Input(name) is { Count: > 0 } t ? t.GetInt64(0) : null;

    /// <summary>The first element of a numeric input, or <paramref name="fallback"/>.</summary>
    public double Float(string name, double fallback) => Input(name) is { Count: > 0 } t ? t.GetDouble(0) : fallback;

    /// <summary>The first element of a boolean input, or <paramref name="fallback"/>.</summary>
    public bool Bool(string name, bool fallback) => Input(name) is { Count: > 0 } t ? t.GetInt64(0) != 0 : fallback;
}

/// <summary>One response of a model: its output tensors.</summary>
/// <param name="Outputs">Output tensors in the model's output order.</param>
/// <param name="IsFinal">False for all but the last response of a streamed request.</param>
public sealed record InferResponse(IReadOnlyList<InferTensor> Outputs, bool IsFinal = true);

/// <summary>Phases of a request the model times itself (Stopwatch ticks).</summary>
public sealed class InferTimings
{
    /// <summary>Preparing inputs (tokenizing).</summary>
    public long InputTicks { get; set; }
    /// <summary>Preparing outputs (detokenizing).</summary>
    public long OutputTicks { get; set; }
}
