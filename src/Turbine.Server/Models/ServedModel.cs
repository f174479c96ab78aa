using Turbine.Server.Metrics;

namespace Turbine.Server.Models;

/// <summary>Where a model version stands, with Triton's state names.</summary>
public enum ModelState
{
    /// <summary>Serving requests.</summary>
    Ready,
    /// <summary>Known to the repository but not loaded.</summary>
    Unavailable,
    /// <summary>Being loaded.</summary>
    Loading,
    /// <summary>Being unloaded; in-flight requests finish.</summary>
    Unloading,
}

/// <summary>
/// A model version the server can run: its metadata, its configuration and its inference entry. Models
/// that are decoupled (one request, many responses) return several responses when the request streams.
/// </summary>
public abstract class ServedModel
{
    /// <summary>Model name.</summary>
    public abstract string Name { get; }
    /// <summary>Version, a positive integer as a string.</summary>
    public virtual string Version => RepositoryConfig is null ? "1" : RepositoryVersion;
    /// <summary>The configuration read from the model repository, when the model came from one; it is what the config endpoint reports.</summary>
    public Inference.ModelConfig? RepositoryConfig { get; init; }
    /// <summary>The repository version served (the latest).</summary>
    public string RepositoryVersion { get; init; } = "1";
    /// <summary>Platform as model metadata reports it (ensemble, tensorrt_llm, python ...).</summary>
    public abstract string Platform { get; }
    /// <summary>Backend name as config.pbtxt names it; empty for ensembles.</summary>
    public abstract string Backend { get; }
    /// <summary>Batch size limit (max_batch_size); 0 when the model does not batch.</summary>
    public virtual int MaxBatchSize => RepositoryConfig?.MaxBatchSize ?? 64;
    /// <summary>Whether the model may send any number of responses per request.</summary>
    public virtual bool Decoupled => false;
    /// <summary>Inputs.</summary>
    public abstract IReadOnlyList<TensorSpec> Inputs { get; }
    /// <summary>Outputs.</summary>
    public abstract IReadOnlyList<TensorSpec> Outputs { get; }
    /// <summary>config.pbtxt parameters (string values), as the config endpoint reports them.</summary>
    public virtual IReadOnlyDictionary<string, string> Parameters => new Dictionary<string, string>();
    /// <summary>Ensemble steps (model name, version) for the config endpoint; empty for other models.</summary>
    public virtual IReadOnlyList<string> EnsembleSteps => [];
    /// <summary>Counters behind the statistics extension and the Prometheus families.</summary>
    public ModelStatistics Statistics { get; } = new();
    /// <summary>The model's state.</summary>
    public ModelState State { get; set; } = ModelState.Ready;

    /// <summary>
    /// Runs <paramref name="request"/>. Responses arrive as they are produced; abandoning the enumeration or
    /// cancelling <paramref name="cancellationToken"/> cancels the request. Bad input throws
    /// <see cref="InferenceException"/> before the first response.
    /// </summary>
    public abstract IAsyncEnumerable<InferResponse> InferAsync(InferRequest request, CancellationToken cancellationToken);

    /// <summary>The spec of input <paramref name="name"/>, or null.</summary>
    public TensorSpec? FindInput(string name)
    {
        foreach (var spec in Inputs)
            if (spec.Name == name)
                return spec;
        return null;
    }
}
