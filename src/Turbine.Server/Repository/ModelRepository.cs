using System.Collections.Immutable;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using Inference;

namespace Turbine.Server.Repository;

/// <summary>
/// A Triton model repository: <c>&lt;root&gt;/&lt;model&gt;/config.pbtxt</c> plus numbered version directories, or
/// the same set of configs held in memory. Serves the three model-control modes: <see cref="LoadAll"/> once (none),
/// <see cref="Rescan"/> periodically (poll), <see cref="Load"/> and <see cref="Unload"/> on request (explicit).
/// Readers see an immutable snapshot in <see cref="Models"/>; changes are serialized.
/// </summary>
public sealed class ModelRepository
{
    private const string ConfigFileName = "config.pbtxt";

    private readonly object _gate = new();
    private readonly IReadOnlyDictionary<string, ModelConfig>? _inMemoryConfigs;
    private readonly bool _checkPaths;
    private ImmutableDictionary<string, RepositoryModel> _models = ImmutableDictionary<string, RepositoryModel>.Empty.WithComparers(StringComparer.Ordinal);
    private ImmutableDictionary<string, string> _failures = ImmutableDictionary<string, string>.Empty;
    private readonly Dictionary<string, string> _fingerprints = new(StringComparer.Ordinal);
    private readonly Dictionary<string, Exception> _lastErrors = new(StringComparer.Ordinal);

    /// <summary>A repository on disk at <paramref name="root"/>; nothing is loaded until asked.</summary>
    /// <exception cref="DirectoryNotFoundException"><paramref name="root"/> does not exist.</exception>
    public ModelRepository(string root)
    {
        Root = Path.GetFullPath(root);
        if (!System.IO.Directory.Exists(Root)) throw new DirectoryNotFoundException($"model repository '{root}' does not exist");
        _checkPaths = true;
    }

    private ModelRepository(IReadOnlyDictionary<string, ModelConfig> configs, bool checkPaths)
    {
        _inMemoryConfigs = configs;
        _checkPaths = checkPaths;
    }

    /// <summary>Opens the repository at <paramref name="root"/> and loads every model (model-control mode none).</summary>
    /// <exception cref="ModelRepositoryException">Some model failed; the message lists every failure.</exception>
    public static ModelRepository Open(string root)
    {
        var repository = new ModelRepository(root);
        repository.ThrowOnFailures(repository.LoadAll());
        return repository;
    }

    /// <summary>
    /// A repository of configs held in memory, each served as version 1 (e.g. the standard layout built for
    /// <c>turbine serve --model</c>). All models are loaded before it is returned.
    /// </summary>
    /// <param name="configs">The model configs; each must carry its name.</param>
    /// <param name="checkPaths">Whether directory parameters must exist.</param>
    /// <exception cref="ModelRepositoryException">Some model failed; the message lists every failure.</exception>
    public static ModelRepository FromConfigs(IEnumerable<ModelConfig> configs, bool checkPaths = true)
    {
        var byName = new Dictionary<string, ModelConfig>(StringComparer.Ordinal);
        foreach (var config in configs)
        {
            if (config.Name.Length == 0) throw new ArgumentException("every in-memory model config needs a name", nameof(configs));
            if (!byName.TryAdd(config.Name, config.Clone())) throw new ArgumentException($"model '{config.Name}' is given twice", nameof(configs));
        }
        var repository = new ModelRepository(byName, checkPaths);
        repository.ThrowOnFailures(repository.LoadAll());
        return repository;
    }

    /// <summary>The repository directory; null for an in-memory repository.</summary>
    public string? Root { get; }

    /// <summary>The models loaded now, by name.</summary>
    public IReadOnlyDictionary<string, RepositoryModel> Models => _models;

    /// <summary>Models whose last load attempt failed, with the reason (for the repository index's UNAVAILABLE state).</summary>
    public IReadOnlyDictionary<string, string> Failures => _failures;

    /// <summary>Looks up a loaded model.</summary>
    public bool TryGetModel(string name, [MaybeNullWhen(false)] out RepositoryModel model) => _models.TryGetValue(name, out model);

    /// <summary>The names of every model in the repository, loaded or not (directories holding a config.pbtxt).</summary>
    public IReadOnlyList<string> ListModelNames()
    {
        if (_inMemoryConfigs is not null) return _inMemoryConfigs.Keys.Order(StringComparer.Ordinal).ToArray();
        return System.IO.Directory.EnumerateDirectories(Root!)
            .Where(dir => File.Exists(Path.Combine(dir, ConfigFileName)))
            .Select(Path.GetFileName)
            .OfType<string>()
            .Order(StringComparer.Ordinal)
            .ToArray();
    }

    /// <summary>Loads every model of the repository; failures are reported, not thrown.</summary>
    public RepositoryChanges LoadAll() => Rescan();

    /// <summary>
    /// Brings the loaded set in line with the repository (poll mode): loads new models, reloads those whose config or
    /// version directories changed, unloads those whose directory is gone. A model that fails to reload keeps serving
    /// its previous state.
    /// </summary>
    public RepositoryChanges Rescan()
    {
        lock (_gate)
        {
            _lastErrors.Clear();
            var names = ListModelNames();
            var loaded = new List<string>();
            var reloaded = new List<string>();
            var failed = new Dictionary<string, string>(StringComparer.Ordinal);
            var models = _models.ToBuilder();
            var unloaded = models.Keys.Where(name => !names.Contains(name)).Order(StringComparer.Ordinal).ToArray();
            foreach (var name in unloaded)
            {
                models.Remove(name);
                _fingerprints.Remove(name);
            }
            var fresh = new Dictionary<string, (RepositoryModel Model, string Fingerprint)>(StringComparer.Ordinal);
            foreach (var name in names)
            {
                string fingerprint = Fingerprint(name);
                if (models.ContainsKey(name) && _fingerprints.GetValueOrDefault(name) == fingerprint) continue;
                try
                {
                    fresh[name] = (ReadModel(name), fingerprint);
                }
                catch (Exception e) when (e is ModelRepositoryException or IOException or UnauthorizedAccessException)
                {
                    failed[name] = e.Message;
                    _lastErrors[name] = e;
                }
            }
            foreach (var (name, (model, _)) in fresh) models[name] = model;
            foreach (var (name, problem) in CrossCheck(models, fresh.Keys))
            {
                failed[name] = problem;
                fresh.Remove(name);
                if (_models.TryGetValue(name, out var previous)) models[name] = previous;
                else models.Remove(name);
            }
            foreach (var (name, (_, fingerprint)) in fresh)
            {
                (_models.ContainsKey(name) ? reloaded : loaded).Add(name);
                _fingerprints[name] = fingerprint;
            }
            _models = models.ToImmutable();
            _failures = failed.ToImmutableDictionary(StringComparer.Ordinal);
            return new RepositoryChanges(loaded.Order(StringComparer.Ordinal).ToArray(), reloaded.Order(StringComparer.Ordinal).ToArray(), unloaded, failed);
        }
    }

    /// <summary>
    /// Loads (or reloads) one model by name (explicit mode), together with the models an ensemble or BLS model calls
    /// that are not loaded yet.
    /// </summary>
    /// <exception cref="ModelRepositoryException">The model or one it depends on cannot be loaded.</exception>
    public RepositoryModel Load(string name)
    {
        lock (_gate)
        {
            var models = _models.ToBuilder();
            var fresh = new Dictionary<string, string>(StringComparer.Ordinal);
            var pending = new Queue<string>([name]);
            while (pending.TryDequeue(out var next))
            {
                if (fresh.ContainsKey(next) || (next != name && models.ContainsKey(next))) continue;
                if (!ListModelNames().Contains(next))
                    throw new ModelRepositoryException(Root ?? "<in-memory repository>", "", $"model '{next}' is not in the repository");
                string fingerprint = Fingerprint(next);
                var model = ReadModel(next);
                models[next] = model;
                fresh[next] = fingerprint;
                foreach (var dependency in Dependencies(model)) pending.Enqueue(dependency);
            }
            var problems = CrossCheck(models, fresh.Keys).ToArray();
            if (problems.Length > 0)
            {
                var (failedName, problem) = problems[0];
                _failures = _failures.SetItem(failedName, problem);
                throw new ModelRepositoryException(models[failedName].ConfigFile, "", problem);
            }
            foreach (var (loadedName, fingerprint) in fresh)
            {
                _fingerprints[loadedName] = fingerprint;
                _failures = _failures.Remove(loadedName);
            }
            _models = models.ToImmutable();
            return _models[name];
        }
    }

    /// <summary>Stops serving one model (explicit mode). Returns false when it was not loaded.</summary>
    public bool Unload(string name)
    {
        lock (_gate)
        {
            _fingerprints.Remove(name);
            _failures = _failures.Remove(name);
            var before = _models;
            _models = _models.Remove(name);
            return !ReferenceEquals(before, _models);
        }
    }

    private void ThrowOnFailures(RepositoryChanges changes)
    {
        if (changes.Failed.Count == 0) return;
        // One model failing on its own (the others failing only because they call it) keeps its own file and key,
        // which callers such as 'repo init' report as is.
        if (_lastErrors.Count == 1 && _lastErrors.Values.Single() is ModelRepositoryException single)
            throw single;
        string source = Root ?? "<in-memory repository>";
        throw new ModelRepositoryException(source, "", "models failed to load:" + Environment.NewLine
            + string.Join(Environment.NewLine, changes.Failed.OrderBy(f => f.Key, StringComparer.Ordinal).Select(f => $"  {f.Key}: {f.Value}")));
    }

    private RepositoryModel ReadModel(string name)
    {
        if (_inMemoryConfigs is not null)
        {
            return ModelConfigLoader.Load(_inMemoryConfigs[name], $"{name}/{ConfigFileName} (generated)", name, null, [1], _checkPaths);
        }
        string directory = Path.Combine(Root!, name);
        string file = Path.Combine(directory, ConfigFileName);
        if (!File.Exists(file)) throw new ModelRepositoryException(file, "", "config.pbtxt is missing");
        var config = ModelConfigLoader.Parse(File.ReadAllText(file), file);
        return ModelConfigLoader.Load(config, file, name, directory, VersionDirectories(directory), _checkPaths);
    }

    /// <summary>Numbered subdirectories; like Triton, names that are not numbers or that start with 0 are ignored.</summary>
    private static long[] VersionDirectories(string directory) =>
        System.IO.Directory.EnumerateDirectories(directory)
            .Select(Path.GetFileName)
            .Where(n => n is { Length: > 0 } && n[0] != '0' && n.All(char.IsAsciiDigit))
            .Select(n => long.TryParse(n, NumberStyles.None, CultureInfo.InvariantCulture, out long v) ? v : -1)
            .Where(v => v > 0)
            .ToArray();

    private string Fingerprint(string name)
    {
        if (_inMemoryConfigs is not null) return "in-memory";
        string directory = Path.Combine(Root!, name);
        var config = new FileInfo(Path.Combine(directory, ConfigFileName));
        string versions = System.IO.Directory.Exists(directory) ? string.Join(",", VersionDirectories(directory).Order()) : "";
        return config.Exists ? $"{config.LastWriteTimeUtc.Ticks}:{config.Length}:{versions}" : "missing";
    }

    private static IEnumerable<string> Dependencies(RepositoryModel model) => model.Kind switch
    {
        ModelKind.Ensemble => model.Config.EnsembleScheduling.Step.Select(s => s.ModelName).Distinct(),
        ModelKind.Bls => model.Bls!.DraftModelName is { } draft ? [model.Bls.TensorRtLlmModelName, draft] : [model.Bls.TensorRtLlmModelName],
        _ => [],
    };

    /// <summary>Checks that ensembles and BLS models of <paramref name="changed"/> refer to models and tensors that exist.</summary>
    private static IEnumerable<(string Name, string Problem)> CrossCheck(IDictionary<string, RepositoryModel> models, IEnumerable<string> changed)
    {
        foreach (var name in changed.ToArray())
        {
            var model = models[name];
            string? problem = model.Kind switch
            {
                ModelKind.Ensemble => EnsembleProblem(model, models),
                ModelKind.Bls => Dependencies(model).Where(d => !models.TryGetValue(d, out var target) || target.Kind != ModelKind.Llm)
                    .Select(d => $"{model.ConfigFile}: parameters.tensorrt_llm_model_name: '{d}' is not an LLM model of the repository").FirstOrDefault(),
                _ => null,
            };
            if (problem is not null) yield return (name, problem);
        }
    }

    private static string? EnsembleProblem(RepositoryModel ensemble, IDictionary<string, RepositoryModel> models)
    {
        string file = ensemble.ConfigFile;
        var steps = ensemble.Config.EnsembleScheduling.Step;
        var available = new HashSet<string>(ensemble.Config.Input.Select(i => i.Name), StringComparer.Ordinal);
        foreach (var step in steps)
            foreach (var stepOutput in step.OutputMap.Values) available.Add(stepOutput);
        for (int i = 0; i < steps.Count; i++)
        {
            var step = steps[i];
            string key = $"ensemble_scheduling.step[{i}]";
            if (!models.TryGetValue(step.ModelName, out var target))
                return $"{file}: {key}.model_name: model '{step.ModelName}' is not loaded in the repository";
            if (step.ModelVersion != -1 && !target.Versions.Contains(step.ModelVersion))
                return $"{file}: {key}.model_version: version {step.ModelVersion} of '{step.ModelName}' is not served; served: -1 (latest), {string.Join(", ", target.Versions)}";
            var inputs = target.Config.Input.ToDictionary(t => t.Name, StringComparer.Ordinal);
            foreach (var (modelInput, tensor) in step.InputMap)
            {
                if (!inputs.ContainsKey(modelInput))
                    return $"{file}: {key}.input_map[\"{modelInput}\"]: '{step.ModelName}' has no input '{modelInput}'";
                if (!available.Contains(tensor))
                    return $"{file}: {key}.input_map[\"{modelInput}\"]: tensor '{tensor}' is neither an ensemble input nor produced by a step";
            }
            foreach (var required in inputs.Values.Where(t => !t.Optional && !step.InputMap.ContainsKey(t.Name)))
                return $"{file}: {key}.input_map: required input '{required.Name}' of '{step.ModelName}' is not mapped";
            var outputs = target.Config.Output.Select(t => t.Name).ToHashSet(StringComparer.Ordinal);
            foreach (var modelOutput in step.OutputMap.Keys)
            {
                if (!outputs.Contains(modelOutput))
                    return $"{file}: {key}.output_map[\"{modelOutput}\"]: '{step.ModelName}' has no output '{modelOutput}'";
            }
        }
        var produced = steps.SelectMany(s => s.OutputMap.Values).ToHashSet(StringComparer.Ordinal);
        foreach (var output in ensemble.Config.Output.Where(o => !produced.Contains(o.Name)))
            return $"{file}: output \"{output.Name}\": no ensemble step produces it";
        return null;
    }
}
