using System.Collections.Concurrent;
using System.Diagnostics;
using System.Runtime.CompilerServices;
using Turbine.Server.Repository;

namespace Turbine.Server.Models;

/// <summary>How the set of served models may change while the server runs (tritonserver's --model-control-mode).</summary>
public enum ModelControlMode
{
    /// <summary>Models load at startup and stay.</summary>
    None,
    /// <summary>The repository is rescanned periodically.</summary>
    Poll,
    /// <summary>Models load and unload only through the repository API (and --load-model at startup).</summary>
    Explicit,
}

/// <summary>The models a server serves, by name, with their state; the frontends look models up here.</summary>
public sealed class ModelRegistry : IAsyncDisposable
{
    private readonly ConcurrentDictionary<string, ServedModel> _models = new(StringComparer.Ordinal);
    private readonly List<IAsyncDisposable> _owned = [];

    /// <summary>An empty registry in <paramref name="mode"/>.</summary>
    public ModelRegistry(ModelControlMode mode = ModelControlMode.None) => Mode = mode;

    /// <summary>The model control mode.</summary>
    public ModelControlMode Mode { get; }

    /// <summary>The repository the models came from, when they did; explicit load and unload go through it.</summary>
    public ModelRepository? Repository { get; set; }

    /// <summary>Every model, in name order.</summary>
    public IReadOnlyList<ServedModel> All => [.. _models.Values.OrderBy(m => m.Name, StringComparer.Ordinal)];

    /// <summary>Adds (or replaces) <paramref name="model"/>.</summary>
    public void Add(ServedModel model) => _models[model.Name] = model;

    /// <summary>Disposes <paramref name="resource"/> with the registry.</summary>
    public void Own(IAsyncDisposable resource) => _owned.Add(resource);

    /// <summary>
    /// The five models of a standard TensorRT-LLM repository over <paramref name="llm"/>: preprocessing,
    /// tensorrt_llm, postprocessing, ensemble and tensorrt_llm_bls.
    /// </summary>
    public static ModelRegistry Standard(LlmService llm, ModelControlMode mode = ModelControlMode.None, IEnumerable<string>? load = null)
    {
        var registry = new ModelRegistry(mode);
        registry.Add(new PreprocessingModel(llm));
        registry.Add(new TensorRtLlmModel(llm));
        registry.Add(new PostprocessingModel(llm));
        registry.Add(new TextGenerationModel("ensemble", llm, bls: false));
        registry.Add(new TextGenerationModel("tensorrt_llm_bls", llm, bls: true));
        registry.Own(llm);
        registry.RestrictTo(load);
        return registry;
    }

    /// <summary>In explicit mode, leaves only the models in <paramref name="load"/> (--load-model; * for all) ready.</summary>
    public void RestrictTo(IEnumerable<string>? load)
    {
        if (Mode != ModelControlMode.Explicit || load is null)
            return;
        var wanted = new HashSet<string>(load, StringComparer.Ordinal);
        if (wanted.Contains("*"))
            return;
        foreach (var model in All)
            if (!wanted.Contains(model.Name))
                model.State = ModelState.Unavailable;
    }

    /// <summary>
    /// The model <paramref name="name"/> at <paramref name="version"/> (null: the latest), ready or not;
    /// 404 as an <see cref="InferenceException"/> when unknown.
    /// </summary>
    public ServedModel Find(string name, string? version = null)
    {
        if (!_models.TryGetValue(name, out var model))
            throw new InferenceException(InferenceError.NotFound, $"Request for unknown model: '{name}' is not found");
        if (!string.IsNullOrEmpty(version) && version != model.Version)
            throw new InferenceException(InferenceError.NotFound, $"Request for unknown model: '{name}' version {version} is not found");
        return model;
    }

    /// <summary>The model named <paramref name="name"/>, or null.</summary>
    public ServedModel? TryFind(string name) => _models.TryGetValue(name, out var model) ? model : null;

    /// <summary>Like <see cref="Find"/>, but the model must be ready (503 otherwise).</summary>
    public ServedModel FindReady(string name, string? version = null)
    {
        var model = Find(name, version);
        return model.State == ModelState.Ready ? model
            : throw new InferenceException(InferenceError.Unavailable, $"Request for unknown model: '{name}' has no available versions");
    }

    /// <summary>Loads or unloads <paramref name="name"/> through the repository API (explicit mode only).</summary>
    public void SetLoaded(string name, bool loaded)
    {
        if (Mode != ModelControlMode.Explicit)
            throw new InferenceException(InferenceError.Unavailable, "explicit model load / unload is not allowed if polling is enabled or the model control mode is none");
        if (Repository is { } repository)
        {
            // The repository re-reads the model's config on load, so an edited config.pbtxt takes effect.
            try
            {
                if (!loaded)
                    repository.Unload(name);
                else if (repository.Load(name) is { Kind: not ModelKind.Llm } fresh)
                    Add(RepositoryModels.Create(fresh, this));
            }
            catch (ModelRepositoryException e)
            {
                throw new InferenceException(InferenceError.InvalidArgument, $"failed to load '{name}': {e.Message}");
            }
        }
        var model = _models.TryGetValue(name, out var m) ? m
            : throw new InferenceException(InferenceError.InvalidArgument, $"failed to load '{name}', failed to poll from model repository");
        model.State = loaded ? ModelState.Ready : ModelState.Unavailable;
    }

    /// <summary>
    /// Runs <paramref name="request"/> on <paramref name="model"/>, recording success or failure and each phase's
    /// duration in the model's statistics.
    /// </summary>
    public static async IAsyncEnumerable<InferResponse> RunAsync(ServedModel model, InferRequest request, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        bool succeeded = false;
        try
        {
            await foreach (var response in model.InferAsync(request, cancellationToken).WithCancellation(cancellationToken).ConfigureAwait(false))
            {
                // Set before yielding: a caller that stops at the final response never resumes this loop.
                if (response.IsFinal)
                    succeeded = true;
                yield return response;
            }
        }
        finally
        {
            long total = Stopwatch.GetTimestamp() - request.StartTicks;
            if (succeeded)
            {
                var t = request.Timings;
                model.Statistics.RecordSuccess(total, 0, t.InputTicks, Math.Max(0, total - t.InputTicks - t.OutputTicks), t.OutputTicks);
            }
            else
                model.Statistics.RecordFailure(total);
        }
    }

    /// <inheritdoc />
    public async ValueTask DisposeAsync()
    {
        foreach (var resource in _owned)
            await resource.DisposeAsync().ConfigureAwait(false);
        _owned.Clear();
    }
}
