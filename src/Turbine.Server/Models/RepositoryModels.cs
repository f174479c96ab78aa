using Turbine.Server.Repository;

namespace Turbine.Server.Models;

/// <summary>Turns a loaded <see cref="ModelRepository"/> into served models, loading each distinct LLM once.</summary>
public static class RepositoryModels
{
    /// <summary>
    /// The served models of <paramref name="repository"/>: each tensorrt_llm model gets an executor over its engine
    /// directory; preprocessing, postprocessing, ensemble and BLS models share the LLM they name (or the only one).
    /// Each reports its repository config.
    /// </summary>
    public static ModelRegistry Build(ModelRepository repository, ModelControlMode mode, IEnumerable<string>? load, int threads)
    {
        var registry = new ModelRegistry(mode);
        var llms = new Dictionary<string, (LlmService Service, LlmModelOptions Options)>(StringComparer.Ordinal);
        try
        {
            foreach (var model in repository.Models.Values.Where(m => m.Kind == ModelKind.Llm))
            {
                var options = model.Llm!;
                var service = LlmService.Load(options.EngineDir, options.ToExecutorOptions(), threads, options.TokenizerDir);
                registry.Own(service);
                llms[model.Name] = (service, options);
            }
            if (llms.Count == 0)
                throw new ModelRepositoryException(repository.Root ?? "(repository)", "backend", "no tensorrt_llm model to serve");
            var first = llms.Values.First();
            foreach (var model in repository.Models.Values)
            {
                string version = model.LatestVersion.ToString(System.Globalization.CultureInfo.InvariantCulture);
                var (llm, llmOptions) = model.Kind == ModelKind.Bls && llms.TryGetValue(model.Bls!.TensorRtLlmModelName, out var named) ? named
                    : model.Kind == ModelKind.Llm ? llms[model.Name] : first;
                ServedModel served = model.Kind switch
                {
                    ModelKind.Llm => new TensorRtLlmModel(llm, model.Name, llmOptions.ExcludeInputInOutput) { RepositoryConfig = model.Config, RepositoryVersion = version },
                    ModelKind.Preprocessing => new PreprocessingModel(llm, model.Name) { RepositoryConfig = model.Config, RepositoryVersion = version },
                    ModelKind.Postprocessing => new PostprocessingModel(llm, model.Name) { RepositoryConfig = model.Config, RepositoryVersion = version },
                    ModelKind.Bls => new TextGenerationModel(model.Name, llm, bls: true, llmOptions.ExcludeInputInOutput, model.Bls!.AccumulateTokens) { RepositoryConfig = model.Config, RepositoryVersion = version },
                    _ => new TextGenerationModel(model.Name, llm, bls: false, llmOptions.ExcludeInputInOutput) { RepositoryConfig = model.Config, RepositoryVersion = version },
                };
                registry.Add(served);
            }
        }
        catch
        {
            registry.DisposeAsync().AsTask().GetAwaiter().GetResult();
            throw;
        }
        registry.RestrictTo(load);
        return registry;
    }
}
