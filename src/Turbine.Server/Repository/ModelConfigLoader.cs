using System.Collections;
using Google.Protobuf;
using Google.Protobuf.Reflection;
using Inference;
using Turbine.Engine.Executor;
using Turbine.Server.Configuration;

namespace Turbine.Server.Repository;

/// <summary>
/// Turns one parsed config.pbtxt into a <see cref="RepositoryModel"/>: checks the name, rejects placeholders left in
/// string values, applies the version policy, decides what serves the model and types its parameters.
/// </summary>
public static class ModelConfigLoader
{
    /// <summary>The Triton backends that mean Turbine's LLM executor.</summary>
    public static readonly IReadOnlyList<string> LlmBackends = ["tensorrtllm", "turbine"];

    private static readonly Dictionary<string, LlmBatchingStrategy> BatchingStrategies = new()
    {
        ["inflight_fused_batching"] = LlmBatchingStrategy.InflightFusedBatching,
        ["inflight_batching"] = LlmBatchingStrategy.InflightBatching,
        ["V1"] = LlmBatchingStrategy.V1,
    };

    private static readonly Dictionary<string, SchedulerPolicy> SchedulerPolicies = new()
    {
        ["guaranteed_no_evict"] = SchedulerPolicy.GuaranteedNoEvict,
        ["max_utilization"] = SchedulerPolicy.MaxUtilization,
    };

    private static readonly string[] TokenizerTypes = ["auto", "llama", "t5", "gpt2"];

    /// <summary>Parses config.pbtxt text; syntax errors become <see cref="ModelRepositoryException"/> with line and column.</summary>
    public static ModelConfig Parse(string text, string file)
    {
        try
        {
            return TextFormatParser.Parse<ModelConfig>(text, file);
        }
        catch (TextFormatException e)
        {
            throw new ModelRepositoryException(e);
        }
    }

    /// <summary>
    /// Checks and types one model. <paramref name="directoryName"/> is the model's directory name (the name the
    /// model has when the config gives none); <paramref name="availableVersions"/> the numeric version directories
    /// present. <paramref name="checkPaths"/> makes directory parameters (engine_dir, tokenizer_dir) fail when absent.
    /// </summary>
    /// <exception cref="ModelRepositoryException">The model cannot be served; the message says why and where.</exception>
    public static RepositoryModel Load(ModelConfig config, string configFile, string directoryName, string? directory,
        IReadOnlyCollection<long> availableVersions, bool checkPaths = true)
    {
        config = config.Clone();
        if (config.Name.Length == 0) config.Name = directoryName;
        else if (config.Name != directoryName)
            throw new ModelRepositoryException(configFile, "name", $"'{config.Name}' does not match the model directory name '{directoryName}'");

        RejectPlaceholders(config, configFile);
        var versions = SelectVersions(config, configFile, availableVersions);
        var parameters = new ParameterReader(config, configFile);
        var kind = KindOf(config, configFile);
        var model = new RepositoryModel
        {
            Name = config.Name,
            Kind = kind,
            Config = config,
            ConfigFile = configFile,
            Directory = directory,
            Versions = versions,
        };
        model = kind switch
        {
            ModelKind.Llm => model with { Llm = ReadLlmOptions(config, parameters, checkPaths) },
            ModelKind.Preprocessing or ModelKind.Postprocessing => model with { Tokenizer = ReadTokenizerOptions(parameters, checkPaths) },
            ModelKind.Bls => model with { Bls = ReadBlsOptions(config, parameters) },
            _ => CheckEnsemble(model),
        };
        return model with { Warnings = parameters.Warnings.ToArray() };
    }

    private static ModelKind KindOf(ModelConfig config, string file)
    {
        if (config.Platform == "ensemble")
        {
            if (config.Backend.Length > 0)
                throw new ModelRepositoryException(file, "backend", $"an ensemble has no backend, but '{config.Backend}' is given");
            return ModelKind.Ensemble;
        }
        if (config.Platform.Length > 0)
            throw new ModelRepositoryException(file, "platform", $"'{config.Platform}' is not supported; allowed: ensemble (or leave platform out and set backend)");
        if (LlmBackends.Contains(config.Backend)) return ModelKind.Llm;
        if (config.Backend == "python")
        {
            return config.Name switch
            {
                "preprocessing" => ModelKind.Preprocessing,
                "postprocessing" => ModelKind.Postprocessing,
                "tensorrt_llm_bls" => ModelKind.Bls,
                _ => throw new ModelRepositoryException(file, "backend",
                    $"python model '{config.Name}' is not supported; Turbine runs only its built-in python models named preprocessing, postprocessing and tensorrt_llm_bls"),
            };
        }
        throw new ModelRepositoryException(file, "backend",
            config.Backend.Length == 0
                ? "no backend given; allowed: tensorrtllm, turbine, python (preprocessing, postprocessing, tensorrt_llm_bls), or platform: \"ensemble\""
                : $"'{config.Backend}' is not supported; allowed: tensorrtllm, turbine, python (preprocessing, postprocessing, tensorrt_llm_bls), or platform: \"ensemble\"");
    }

    private static LlmModelOptions ReadLlmOptions(ModelConfig config, ParameterReader parameters, bool checkPaths)
    {
        string file = parameters.File;
        if (config.MaxBatchSize < 1)
            throw new ModelRepositoryException(file, "max_batch_size", $"{config.MaxBatchSize} is not allowed for the LLM model; it must be at least 1");
        string engineDir = CheckDirectory(parameters, "engine directory", checkPaths, "gpt_model_path", "engine_dir");
        string tokenizerDir = parameters.Find("tokenizer_dir") is null
            ? engineDir
            : CheckDirectory(parameters, "tokenizer directory", checkPaths, "tokenizer_dir");
        long queueDelay = parameters.Long("max_queue_delay_microseconds", 0)
            ?? (long)(config.DynamicBatching?.MaxQueueDelayMicroseconds ?? 0);
        return new LlmModelOptions
        {
            EngineDir = engineDir,
            TokenizerDir = tokenizerDir,
            MaxBatchSize = config.MaxBatchSize,
            MaxBeamWidth = parameters.Int("max_beam_width", 1) ?? 1,
            MaxTokensInPagedKvCache = parameters.Int("max_tokens_in_paged_kv_cache", 1),
            MaxAttentionWindowSize = parameters.Int("max_attention_window_size", 1),
            KvCacheFreeMemoryFraction = parameters.Fraction("kv_cache_free_gpu_mem_fraction"),
            ExcludeInputInOutput = parameters.Bool("exclude_input_in_output") ?? false,
            EnableKvCacheReuse = parameters.Bool("enable_kv_cache_reuse") ?? false,
            BatchingStrategy = parameters.Choice(BatchingStrategies, "batching_strategy", "gpt_model_type") ?? LlmBatchingStrategy.InflightFusedBatching,
            BatchSchedulerPolicy = parameters.Choice(SchedulerPolicies, "batch_scheduler_policy") ?? SchedulerPolicy.GuaranteedNoEvict,
            MaxQueueDelayMicroseconds = queueDelay,
            MaxQueueSize = parameters.Int("max_queue_size", 1),
            Decoupled = config.ModelTransactionPolicy?.Decoupled ?? false,
        };
    }

    private static TokenizerModelOptions ReadTokenizerOptions(ParameterReader parameters, bool checkPaths)
    {
        string tokenizerType = parameters.String("tokenizer_type") ?? "auto";
        if (!TokenizerTypes.Contains(tokenizerType, StringComparer.OrdinalIgnoreCase))
            throw new ModelRepositoryException(parameters.File, "parameters.tokenizer_type", $"'{tokenizerType}' is not allowed; allowed: {string.Join(", ", TokenizerTypes)}");
        return new TokenizerModelOptions
        {
            TokenizerDir = CheckDirectory(parameters, "tokenizer directory", checkPaths, "tokenizer_dir"),
            TokenizerType = tokenizerType.ToLowerInvariant(),
            AddSpecialTokens = parameters.Bool("add_special_tokens") ?? true,
            SkipSpecialTokens = parameters.Bool("skip_special_tokens") ?? true,
        };
    }

    private static BlsModelOptions ReadBlsOptions(ModelConfig config, ParameterReader parameters) => new()
    {
        TensorRtLlmModelName = parameters.String("tensorrt_llm_model_name") ?? "tensorrt_llm",
        DraftModelName = parameters.String("tensorrt_llm_draft_model_name"),
        AccumulateTokens = parameters.Bool("accumulate_tokens") ?? false,
        Decoupled = config.ModelTransactionPolicy?.Decoupled ?? false,
    };

    private static RepositoryModel CheckEnsemble(RepositoryModel model)
    {
        var scheduling = model.Config.EnsembleScheduling;
        if (scheduling is null || scheduling.Step.Count == 0)
            throw new ModelRepositoryException(model.ConfigFile, "ensemble_scheduling", "an ensemble needs ensemble_scheduling with at least one step");
        for (int i = 0; i < scheduling.Step.Count; i++)
        {
            if (scheduling.Step[i].ModelName.Length == 0)
                throw new ModelRepositoryException(model.ConfigFile, $"ensemble_scheduling.step[{i}].model_name", "is empty");
        }
        return model;
    }

    private static string CheckDirectory(ParameterReader parameters, string what, bool checkPaths, params string[] keys)
    {
        string value = parameters.Required(what, keys);
        string key = parameters.Find(keys)!.Value.Key;
        string full = Path.GetFullPath(value);
        if (checkPaths && !System.IO.Directory.Exists(full))
            throw new ModelRepositoryException(parameters.File, $"parameters.{key}", $"{what} '{value}' does not exist");
        return full;
    }

    /// <summary>Applies version_policy (latest 1 when absent) to the versions present.</summary>
    private static long[] SelectVersions(ModelConfig config, string file, IReadOnlyCollection<long> available)
    {
        var sorted = available.Order().ToArray();
        if (sorted.Length == 0)
            throw new ModelRepositoryException(file, "", "no version directory found; put the model's files under a numbered directory such as <model>/1/");
        var policy = config.VersionPolicy;
        long[] selected;
        switch (policy?.PolicyChoiceCase ?? ModelVersionPolicy.PolicyChoiceOneofCase.None)
        {
            case ModelVersionPolicy.PolicyChoiceOneofCase.All:
                selected = sorted;
                break;
            case ModelVersionPolicy.PolicyChoiceOneofCase.Specific:
                var wanted = policy!.Specific.Versions;
                if (wanted.Count == 0)
                    throw new ModelRepositoryException(file, "version_policy.specific.versions", "lists no versions");
                var missing = wanted.Where(v => !sorted.Contains(v)).ToArray();
                if (missing.Length > 0)
                    throw new ModelRepositoryException(file, "version_policy.specific.versions",
                        $"version {string.Join(", ", missing)} has no directory; present: {string.Join(", ", sorted)}");
                selected = wanted.Distinct().Order().ToArray();
                break;
            default:
                uint count = policy?.Latest?.NumVersions ?? 0;
                if (count == 0) count = 1;
                selected = sorted.Skip(Math.Max(0, sorted.Length - (int)Math.Min(count, int.MaxValue))).ToArray();
                break;
        }
        return selected;
    }

    /// <summary>
    /// Fails on a <c>${...}</c> left in any string of the config outside the parameters' values (those are judged
    /// per key by <see cref="ParameterReader"/>), naming the key so the user knows what fill_template.py missed.
    /// </summary>
    private static void RejectPlaceholders(ModelConfig config, string file)
    {
        foreach (var (path, value) in Strings(config, ""))
        {
            if (value.Contains("${", StringComparison.Ordinal))
                throw new ModelRepositoryException(file, path, $"'{value}' still holds a template placeholder; fill it (fill_template.py, or generate the repository with 'turbine repo init')");
        }
    }

    private static IEnumerable<(string Path, string Value)> Strings(IMessage message, string prefix)
    {
        foreach (var field in message.Descriptor.Fields.InDeclarationOrder())
        {
            string path = prefix + field.Name;
            object value = field.Accessor.GetValue(message);
            if (field.IsMap)
            {
                bool parameterValues = message is ModelConfig && field.FieldNumber == ModelConfig.ParametersFieldNumber;
                foreach (DictionaryEntry entry in (IDictionary)value)
                {
                    string entryPath = $"{path}[\"{entry.Key}\"]";
                    if (entry.Key is string key) yield return (entryPath + " (key)", key);
                    if (parameterValues) continue;
                    if (entry.Value is string text) yield return (entryPath, text);
                    else if (entry.Value is IMessage nested)
                        foreach (var item in Strings(nested, entryPath + ".")) yield return item;
                }
            }
            else if (field.IsRepeated)
            {
                var list = (IList)value;
                for (int i = 0; i < list.Count; i++)
                {
                    if (list[i] is string text) yield return ($"{path}[{i}]", text);
                    else if (list[i] is IMessage nested)
                        foreach (var item in Strings(nested, $"{path}[{i}].")) yield return item;
                }
            }
            else if (value is string text)
            {
                yield return (path, text);
            }
            else if (value is IMessage nested && field.FieldType == FieldType.Message)
            {
                foreach (var item in Strings(nested, path + ".")) yield return item;
            }
        }
    }
}
