using Turbine.Engine.Backends;
using Turbine.Server.Repository;

namespace Turbine.Server.Models;

/// <summary>Turns a loaded <see cref="ModelRepository"/> into served models, loading each distinct LLM once.</summary>
public static class RepositoryModels
{
    /// <summary>
    /// The served models of <paramref name="repository"/>: each tensorrt_llm model gets an executor over its engine
    /// directory; preprocessing, postprocessing, ensemble and BLS models share the LLM they name (or the first one).
    /// Each reports its repository config.
    /// </summary>
    public static ModelRegistry Build(ModelRepository repository, ModelControlMode mode, IEnumerable<string>? load, int threads,
        Func<IComputeBackend>? createBackend = null)
    {
        var registry = new ModelRegistry(mode) { Repository = repository };
        try
        {
            foreach (var model in repository.Models.Values.Where(m => m.Kind == ModelKind.Llm))
            {
                var options = model.Llm!;
                var service = LlmService.Load(options.EngineDir, options.ToExecutorOptions(), threads, options.TokenizerDir, createBackend);
                registry.Own(service);
                registry.Add(new TensorRtLlmModel(service, model.Name, options.ExcludeInputInOutput) { RepositoryConfig = model.Config, RepositoryVersion = Version(model) });
            }
            if (!registry.All.OfType<TensorRtLlmModel>().Any())
                throw new ModelRepositoryException(repository.Root ?? "(repository)", "backend", "no tensorrt_llm model to serve");
            foreach (var model in repository.Models.Values.Where(m => m.Kind != ModelKind.Llm))
                registry.Add(Create(model, registry));
        }
        catch
        {
            registry.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
        registry.RestrictTo(load);
        return registry;
    }

    /// <summary>
    /// A served model for the tokenizer, ensemble or BLS model <paramref name="model"/> over an LLM already in
    /// <paramref name="registry"/> (the one a BLS model names, else the first).
    /// </summary>
    public static ServedModel Create(RepositoryModel model, ModelRegistry registry)
    {
        var llms = registry.All.OfType<TensorRtLlmModel>().ToList();
        var target = model.Kind == ModelKind.Bls ? llms.FirstOrDefault(m => m.Name == model.Bls!.TensorRtLlmModelName) ?? llms[0] : llms[0];
        string version = Version(model);
        return model.Kind switch
        {
            ModelKind.Preprocessing => new PreprocessingModel(target.Llm, model.Name) { RepositoryConfig = model.Config, RepositoryVersion = version },
            ModelKind.Postprocessing => new PostprocessingModel(target.Llm, model.Name) { RepositoryConfig = model.Config, RepositoryVersion = version },
            ModelKind.Bls => new TextGenerationModel(model.Name, target.Llm, bls: true, target.ExcludeInputByDefault, model.Bls!.AccumulateTokens)
                { RepositoryConfig = model.Config, RepositoryVersion = version },
            ModelKind.Ensemble => new TextGenerationModel(model.Name, target.Llm, bls: false, target.ExcludeInputByDefault)
                { RepositoryConfig = model.Config, RepositoryVersion = version },
            _ => throw new ModelRepositoryException(model.ConfigFile, "backend", "a tensorrt_llm model cannot be added while serving; restart to load it"),
        };
    }

    private static string Version(RepositoryModel model) => model.LatestVersion.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
