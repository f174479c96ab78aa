using Turbine.Engine.Executor;
using Turbine.Server.Repository;
using Turbine.Server.Tests.Configuration;

namespace Turbine.Server.Tests.Repository;

public sealed class ModelRepositoryTests : IDisposable
{
    private readonly RepositoryFixture _fixture = new();

    public void Dispose() => _fixture.Dispose();

    private void AddSeedRepository()
    {
        _fixture.AddModel("tensorrt_llm", SeedConfigs.TensorRtLlm, 1);
        _fixture.AddModel("preprocessing", SeedConfigs.Preprocessing, 1);
        _fixture.AddModel("postprocessing", SeedConfigs.Postprocessing, 1);
        _fixture.AddModel("ensemble", SeedConfigs.Ensemble, 1);
    }

    [Fact]
    public void LoadsTheSeedsRepositoryAndTypesTheLlmParameters()
    {
        AddSeedRepository();
        var repository = ModelRepository.Open(_fixture.RepositoryDir);

        Assert.Equal(["ensemble", "postprocessing", "preprocessing", "tensorrt_llm"], repository.Models.Keys.Order());
        var llm = repository.Models["tensorrt_llm"];
        Assert.Equal(ModelKind.Llm, llm.Kind);
        var options = llm.Llm!;
        Assert.Equal(Path.GetFullPath(_fixture.EngineDir), options.EngineDir);
        Assert.Equal(options.EngineDir, options.TokenizerDir);
        Assert.Equal(8, options.MaxBatchSize);
        Assert.Equal(2560, options.MaxTokensInPagedKvCache);
        Assert.Equal(2560, options.MaxAttentionWindowSize);
        Assert.Equal(0.5, options.KvCacheFreeMemoryFraction);
        Assert.True(options.ExcludeInputInOutput);
        Assert.False(options.EnableKvCacheReuse);
        Assert.Equal(LlmBatchingStrategy.InflightBatching, options.BatchingStrategy);
        Assert.Equal(SchedulerPolicy.GuaranteedNoEvict, options.BatchSchedulerPolicy);
        Assert.Equal(600, options.MaxQueueDelayMicroseconds);
        Assert.True(options.Decoupled);
        Assert.Contains(llm.Warnings, w => w.Contains("parameters.batch_scheduler_policy") && w.Contains("${batch_scheduler_policy}"));
        Assert.Contains(llm.Warnings, w => w.Contains("parameters.kv_cache_host_memory_bytes"));

        Assert.Equal(ModelKind.Preprocessing, repository.Models["preprocessing"].Kind);
        Assert.Equal(Path.GetFullPath(_fixture.TokenizerDir), repository.Models["preprocessing"].Tokenizer!.TokenizerDir);
        Assert.Equal(ModelKind.Postprocessing, repository.Models["postprocessing"].Kind);
        Assert.Equal(ModelKind.Ensemble, repository.Models["ensemble"].Kind);
    }

    [Fact]
    public void MapsOntoExecutorOptions()
    {
        var options = new LlmModelOptions
        {
            EngineDir = "/m",
            TokenizerDir = "/m",
            MaxBatchSize = 8,
            MaxBeamWidth = 2,
            MaxTokensInPagedKvCache = 2560,
            MaxAttentionWindowSize = 1024,
            KvCacheFreeMemoryFraction = 0.5,
            EnableKvCacheReuse = true,
            BatchingStrategy = LlmBatchingStrategy.V1,
            BatchSchedulerPolicy = SchedulerPolicy.MaxUtilization,
            MaxQueueDelayMicroseconds = 600,
            MaxQueueSize = 10,
        };
        var executor = options.ToExecutorOptions();
        Assert.Equal(8, executor.MaxBatchSize);
        Assert.Equal(2, executor.MaxBeamWidth);
        Assert.Equal(2560, executor.MaxTokensInPagedKvCache);
        Assert.Equal(1024, executor.MaxAttentionWindowSize);
        Assert.True(executor.EnableKvCacheReuse);
        Assert.Equal(BatchingMode.Static, executor.Batching);
        Assert.Equal(SchedulerPolicy.MaxUtilization, executor.Policy);
        Assert.Equal(TimeSpan.FromMicroseconds(600), executor.StaticBatchTimeout);
        Assert.Equal(10, executor.MaxQueueSize);
        Assert.Equal(0.5f, executor.KvCacheFreeGpuMemFraction);

        var defaults = (options with { KvCacheFreeMemoryFraction = null, BatchingStrategy = LlmBatchingStrategy.InflightFusedBatching, MaxQueueSize = null }).ToExecutorOptions();
        Assert.Equal(BatchingMode.InFlight, defaults.Batching);
        Assert.Equal(new ExecutorOptions().KvCacheMemoryBytes, defaults.KvCacheMemoryBytes);
        Assert.Equal(new ExecutorOptions().MaxQueueSize, defaults.MaxQueueSize);
    }

    [Fact]
    public void UnfilledEngineDirIsAnErrorNamingFileAndKey()
    {
        string file = _fixture.AddModel("tensorrt_llm", SeedConfigs.TensorRtLlm.Replace("\"ENGINE_DIR\"", "\"${engine_dir}\""), 1);
        var repository = new ModelRepository(_fixture.RepositoryDir);
        var error = Assert.Throws<ModelRepositoryException>(() => repository.Load("tensorrt_llm"));
        Assert.Equal(file, error.File);
        Assert.Equal("parameters.gpt_model_path", error.Key);
        Assert.Contains("${engine_dir}", error.Message);
        Assert.Contains("fill_template.py", error.Message);
    }

    [Fact]
    public void UnfilledNonNumericPlaceholderIsASyntaxErrorWithLocation()
    {
        string file = _fixture.AddModel("tensorrt_llm", SeedConfigs.TensorRtLlm.Replace("max_batch_size: 8", "max_batch_size: ${triton_max_batch_size}"), 1);
        var changes = new ModelRepository(_fixture.RepositoryDir).LoadAll();
        Assert.StartsWith($"{file}:4:17: unfilled template placeholder ${{triton_max_batch_size}}", changes.Failed["tensorrt_llm"]);
    }

    [Fact]
    public void PlaceholderInAStringOutsideParametersIsAnError()
    {
        string file = _fixture.AddModel("postprocessing", SeedConfigs.Postprocessing.Replace("\"TOKENS_BATCH\"", "\"${tokens}\""), 1);
        var error = Assert.Throws<ModelRepositoryException>(() => new ModelRepository(_fixture.RepositoryDir).Load("postprocessing"));
        Assert.Equal((file, "input[0].name"), (error.File, error.Key));
    }

    [Theory]
    [InlineData("gpt_model_type", "inflight_batching", "dynamic", "parameters.gpt_model_type", "allowed: inflight_fused_batching, inflight_batching, V1")]
    [InlineData("batch_scheduler_policy", "${batch_scheduler_policy}", "greedy", "parameters.batch_scheduler_policy", "allowed: guaranteed_no_evict, max_utilization")]
    [InlineData("kv_cache_free_gpu_mem_fraction", "0.5", "1.5", "parameters.kv_cache_free_gpu_mem_fraction", "not a fraction in (0, 1]")]
    [InlineData("max_beam_width", "1", "0", "parameters.max_beam_width", "not an integer of at least 1")]
    [InlineData("exclude_input_in_output", "True", "sometimes", "parameters.exclude_input_in_output", "allowed: true, false")]
    public void BadParameterValuesNameKeyAndAllowedValues(string key, string good, string bad, string errorKey, string expected)
    {
        string text = SeedConfigs.TensorRtLlm.Replace($"key: \"{key}\"\n  value: {{\n    string_value: \"{good}\"", $"key: \"{key}\"\n  value: {{\n    string_value: \"{bad}\"");
        Assert.NotEqual(SeedConfigs.TensorRtLlm, text);
        string file = _fixture.AddModel("tensorrt_llm", text, 1);
        var error = Assert.Throws<ModelRepositoryException>(() => new ModelRepository(_fixture.RepositoryDir).Load("tensorrt_llm"));
        Assert.Equal((file, errorKey), (error.File, error.Key));
        Assert.Contains(expected, error.Message);
        Assert.Contains($"'{bad}'", error.Message);
    }

    [Fact]
    public void MissingEngineDirectoryIsAnError()
    {
        _fixture.AddModel("tensorrt_llm", SeedConfigs.TensorRtLlm.Replace("\"ENGINE_DIR\"", "\"/no/such/dir\""), 1);
        var error = Assert.Throws<ModelRepositoryException>(() => new ModelRepository(_fixture.RepositoryDir).Load("tensorrt_llm"));
        Assert.Equal("parameters.gpt_model_path", error.Key);
        Assert.Contains("does not exist", error.Message);
    }

    [Fact]
    public void NameMismatchIsAnErrorAndMissingNameTakesTheDirectoryName()
    {
        _fixture.AddModel("renamed", SeedConfigs.Postprocessing, 1);
        var error = Assert.Throws<ModelRepositoryException>(() => new ModelRepository(_fixture.RepositoryDir).Load("renamed"));
        Assert.Equal("name", error.Key);
        Assert.Contains("'postprocessing' does not match the model directory name 'renamed'", error.Message);

        _fixture.AddModel("postprocessing", SeedConfigs.Postprocessing.Replace("name: \"postprocessing\"", ""), 1);
        Assert.Equal("postprocessing", new ModelRepository(_fixture.RepositoryDir).Load("postprocessing").Config.Name);
    }

    [Theory]
    [InlineData("", new long[] { 3 })]
    [InlineData("version_policy: { latest: { num_versions: 2 } }", new long[] { 2, 3 })]
    [InlineData("version_policy: { all: { } }", new long[] { 1, 2, 3 })]
    [InlineData("version_policy: { specific: { versions: [ 1, 3 ] } }", new long[] { 1, 3 })]
    public void AppliesVersionPolicies(string policy, long[] expected)
    {
        _fixture.AddModel("postprocessing", SeedConfigs.Postprocessing + "\n" + policy, 1, 2, 3);
        Directory.CreateDirectory(Path.Combine(_fixture.RepositoryDir, "postprocessing", "not-a-version"));
        Directory.CreateDirectory(Path.Combine(_fixture.RepositoryDir, "postprocessing", "04"));
        var model = new ModelRepository(_fixture.RepositoryDir).Load("postprocessing");
        Assert.Equal(expected, model.Versions);
        Assert.Equal(expected[^1], model.LatestVersion);
    }

    [Fact]
    public void SpecificVersionWithoutDirectoryAndNoVersionsAreErrors()
    {
        _fixture.AddModel("postprocessing", SeedConfigs.Postprocessing + "version_policy: { specific: { versions: [ 5 ] } }", 1);
        var error = Assert.Throws<ModelRepositoryException>(() => new ModelRepository(_fixture.RepositoryDir).Load("postprocessing"));
        Assert.Equal("version_policy.specific.versions", error.Key);
        Assert.Contains("version 5 has no directory; present: 1", error.Message);

        _fixture.AddModel("preprocessing", SeedConfigs.Preprocessing);
        error = Assert.Throws<ModelRepositoryException>(() => new ModelRepository(_fixture.RepositoryDir).Load("preprocessing"));
        Assert.Contains("no version directory found", error.Message);
    }

    [Theory]
    [InlineData("backend: \"python\"", "backend: \"onnxruntime\"", "backend", "'onnxruntime' is not supported")]
    [InlineData("name: \"postprocessing\"\nbackend: \"python\"", "name: \"postprocessing\"\nplatform: \"tensorrt_plan\"", "platform", "'tensorrt_plan' is not supported; allowed: ensemble")]
    public void UnsupportedRunnersAreErrors(string from, string to, string key, string expected)
    {
        _fixture.AddModel("postprocessing", SeedConfigs.Postprocessing.Replace(from, to), 1);
        var error = Assert.Throws<ModelRepositoryException>(() => new ModelRepository(_fixture.RepositoryDir).Load("postprocessing"));
        Assert.Equal(key, error.Key);
        Assert.Contains(expected, error.Message);
    }

    [Fact]
    public void OtherPythonModelsAreNotSupported()
    {
        _fixture.AddModel("custom", SeedConfigs.Postprocessing.Replace("name: \"postprocessing\"", "name: \"custom\""), 1);
        var error = Assert.Throws<ModelRepositoryException>(() => new ModelRepository(_fixture.RepositoryDir).Load("custom"));
        Assert.Contains("python model 'custom' is not supported", error.Message);
    }

    [Fact]
    public void ExplicitLoadOfAnEnsembleLoadsItsStepsAndUnloadRemovesOne()
    {
        AddSeedRepository();
        var repository = new ModelRepository(_fixture.RepositoryDir);
        Assert.Empty(repository.Models);
        Assert.Equal(["ensemble", "postprocessing", "preprocessing", "tensorrt_llm"], repository.ListModelNames());

        repository.Load("ensemble");
        Assert.Equal(["ensemble", "postprocessing", "preprocessing", "tensorrt_llm"], repository.Models.Keys.Order());
        Assert.True(repository.Unload("postprocessing"));
        Assert.False(repository.Unload("postprocessing"));
        Assert.False(repository.TryGetModel("postprocessing", out _));
        Assert.True(repository.TryGetModel("ensemble", out _));
    }

    [Fact]
    public void EnsembleReferringToAMissingTensorFails()
    {
        AddSeedRepository();
        string file = _fixture.AddModel("ensemble", SeedConfigs.Ensemble.Replace("key: \"TOKENS_BATCH\"", "key: \"TOKENS\""), 1);
        var changes = new ModelRepository(_fixture.RepositoryDir).LoadAll();
        Assert.Equal($"{file}: ensemble_scheduling.step[2].input_map[\"TOKENS\"]: 'postprocessing' has no input 'TOKENS'", changes.Failed["ensemble"]);
    }

    [Fact]
    public void EnsembleReferringToAMissingModelFails()
    {
        _fixture.AddModel("ensemble", SeedConfigs.Ensemble, 1);
        var changes = new ModelRepository(_fixture.RepositoryDir).LoadAll();
        Assert.Contains("model 'preprocessing' is not loaded in the repository", changes.Failed["ensemble"]);
        var error = Assert.Throws<ModelRepositoryException>(() => ModelRepository.Open(_fixture.RepositoryDir));
        Assert.Contains("ensemble:", error.Message);
    }

    [Fact]
    public void RescanPicksUpNewChangedAndRemovedModels()
    {
        _fixture.AddModel("postprocessing", SeedConfigs.Postprocessing, 1);
        var repository = new ModelRepository(_fixture.RepositoryDir);
        Assert.Equal(["postprocessing"], repository.LoadAll().Loaded);
        Assert.True(repository.Rescan().IsEmpty);

        _fixture.AddModel("preprocessing", SeedConfigs.Preprocessing, 1);
        Directory.CreateDirectory(Path.Combine(_fixture.RepositoryDir, "postprocessing", "2"));
        var changes = repository.Rescan();
        Assert.Equal(["preprocessing"], changes.Loaded);
        Assert.Equal(["postprocessing"], changes.Reloaded);
        Assert.Equal([2L], repository.Models["postprocessing"].Versions);

        File.WriteAllText(Path.Combine(_fixture.RepositoryDir, "postprocessing", "config.pbtxt"), "name: \"postprocessing\" oops");
        changes = repository.Rescan();
        Assert.Contains("1:24: unknown field 'oops' in inference.ModelConfig", changes.Failed["postprocessing"]);
        Assert.True(repository.TryGetModel("postprocessing", out _));

        Directory.Delete(Path.Combine(_fixture.RepositoryDir, "preprocessing"), recursive: true);
        Assert.Equal(["preprocessing"], repository.Rescan().Unloaded);
        Assert.False(repository.TryGetModel("preprocessing", out _));
    }
}
