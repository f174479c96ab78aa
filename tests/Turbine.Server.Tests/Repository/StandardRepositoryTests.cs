using Inference;
using Turbine.Engine.Executor;
using Turbine.Server.Configuration;
using Turbine.Server.Repository;

namespace Turbine.Server.Tests.Repository;

public sealed class StandardRepositoryTests : IDisposable
{
    private readonly RepositoryFixture _fixture = new();

    public void Dispose() => _fixture.Dispose();

    private static string[] Signature(IEnumerable<ModelInput> inputs) =>
        inputs.Select(i => $"{i.Name} {i.DataType} [{string.Join(", ", i.Dims)}]{(i.Optional ? " optional" : "")}").ToArray();

    [Fact]
    public void RepoInitOutputLoadsWithTheTemplateTensors()
    {
        var files = StandardRepository.Write(_fixture.RepositoryDir, _fixture.EngineDir, _fixture.TokenizerDir, decoupled: true,
            StandardRepository.ParseOverrides(["triton_max_batch_size:8,max_tokens_in_paged_kv_cache:2560", "batching_strategy:V1"]));
        Assert.Equal(5, files.Count);
        foreach (var name in StandardRepository.ModelNames)
        {
            Assert.True(Directory.Exists(Path.Combine(_fixture.RepositoryDir, name, "1")));
            Assert.DoesNotContain("${", File.ReadAllText(Path.Combine(_fixture.RepositoryDir, name, "config.pbtxt")));
        }

        var repository = ModelRepository.Open(_fixture.RepositoryDir);
        Assert.Equal(StandardRepository.ModelNames.Order(), repository.Models.Keys.Order());
        Assert.All(repository.Models.Values, m => Assert.Empty(m.Warnings));

        var ensemble = repository.Models["ensemble"];
        Assert.Equal(ModelKind.Ensemble, ensemble.Kind);
        Assert.Equal(
            ["text_input", "max_tokens", "bad_words", "stop_words", "end_id", "pad_id", "top_k", "top_p", "temperature", "length_penalty",
             "repetition_penalty", "min_length", "presence_penalty", "frequency_penalty", "random_seed", "return_log_probs",
             "return_context_logits", "return_generation_logits", "beam_width", "stream", "prompt_embedding_table", "prompt_vocab_size",
             "embedding_bias_words", "embedding_bias_weights"],
            ensemble.Config.Input.Select(i => i.Name));
        Assert.Equal(["text_output", "cum_log_probs", "output_log_probs", "context_logits", "generation_logits", "batch_index"],
            ensemble.Config.Output.Select(o => o.Name));
        var signature = Signature(ensemble.Config.Input);
        Assert.Equal("text_input TypeString [-1]", signature[0]);
        Assert.Equal("max_tokens TypeInt32 [-1]", signature[1]);
        Assert.Equal("bad_words TypeString [-1] optional", signature[2]);
        Assert.Equal("random_seed TypeUint64 [1] optional", signature[14]);
        Assert.Equal("stream TypeBool [1] optional", signature[19]);
        Assert.Equal("prompt_embedding_table TypeFp16 [-1, -1] optional", signature[20]);
        Assert.Equal(["preprocessing", "tensorrt_llm", "postprocessing"], ensemble.Config.EnsembleScheduling.Step.Select(s => s.ModelName));

        var llm = repository.Models["tensorrt_llm"];
        Assert.Equal(ModelKind.Llm, llm.Kind);
        Assert.Equal("tensorrtllm", llm.Config.Backend);
        Assert.Equal(["input_ids", "input_lengths", "request_output_len"], llm.Config.Input.Where(i => !i.Optional).Select(i => i.Name));
        Assert.Contains(llm.Config.Input, i => i.Name == "streaming" && i.DataType == DataType.TypeBool && i.Optional);
        Assert.Equal(["output_ids", "sequence_length", "cum_log_probs", "output_log_probs", "context_logits", "generation_logits", "batch_index"],
            llm.Config.Output.Select(o => o.Name));
        Assert.True(llm.Decoupled);
        Assert.Equal(8, llm.Llm!.MaxBatchSize);
        Assert.Equal(2560, llm.Llm.MaxTokensInPagedKvCache);
        Assert.Null(llm.Llm.MaxAttentionWindowSize);
        Assert.Equal(LlmBatchingStrategy.V1, llm.Llm.BatchingStrategy);
        Assert.Equal(Path.GetFullPath(_fixture.TokenizerDir), llm.Llm.TokenizerDir);
        Assert.Equal(BatchingMode.Static, llm.Llm.ToExecutorOptions().Batching);

        var pre = repository.Models["preprocessing"];
        Assert.Equal(["QUERY", "REQUEST_OUTPUT_LEN"], pre.Config.Input.Where(i => !i.Optional).Select(i => i.Name));
        Assert.Equal(["INPUT_ID", "REQUEST_INPUT_LEN", "BAD_WORDS_IDS", "STOP_WORDS_IDS", "EMBEDDING_BIAS", "REQUEST_OUTPUT_LEN", "OUT_END_ID", "OUT_PAD_ID"],
            pre.Config.Output.Select(o => o.Name));
        Assert.Equal(Path.GetFullPath(_fixture.TokenizerDir), pre.Tokenizer!.TokenizerDir);

        var post = repository.Models["postprocessing"];
        Assert.Equal(["TOKENS_BATCH", "SEQUENCE_LENGTH"], post.Config.Input.Where(i => !i.Optional).Select(i => i.Name));
        Assert.Equal(["OUTPUT", "OUT_CUM_LOG_PROBS", "OUT_OUTPUT_LOG_PROBS", "OUT_CONTEXT_LOGITS", "OUT_GENERATION_LOGITS"], post.Config.Output.Select(o => o.Name));

        var bls = repository.Models["tensorrt_llm_bls"];
        Assert.Equal(ModelKind.Bls, bls.Kind);
        Assert.Equal("tensorrt_llm", bls.Bls!.TensorRtLlmModelName);
        Assert.Null(bls.Bls.DraftModelName);
        Assert.True(bls.Bls.Decoupled);
        Assert.Equal(ensemble.Config.Output.Select(o => o.Name), bls.Config.Output.Select(o => o.Name));
        Assert.Equal(ensemble.Config.Input.Select(i => i.Name), bls.Config.Input.Select(i => i.Name).Take(ensemble.Config.Input.Count));
    }

    [Fact]
    public void BuildInMemoryMatchesTheWrittenRepository()
    {
        var inMemory = StandardRepository.Build(_fixture.EngineDir);
        Assert.Null(inMemory.Root);
        Assert.All(inMemory.Models.Values, m => Assert.Null(m.Directory));
        Assert.False(inMemory.Models["tensorrt_llm"].Decoupled);
        Assert.Equal([1L], inMemory.Models["tensorrt_llm"].Versions);
        Assert.Equal(Path.GetFullPath(_fixture.EngineDir), inMemory.Models["preprocessing"].Tokenizer!.TokenizerDir);

        StandardRepository.Write(_fixture.RepositoryDir, _fixture.EngineDir);
        var onDisk = ModelRepository.Open(_fixture.RepositoryDir);
        foreach (var name in StandardRepository.ModelNames)
            Assert.Equal(onDisk.Models[name].Config, inMemory.Models[name].Config);

        Assert.True(inMemory.Unload("ensemble"));
        inMemory.Load("ensemble");
        Assert.True(inMemory.TryGetModel("ensemble", out _));
    }

    [Fact]
    public void GeneratedConfigsRoundTripThroughThePrinter()
    {
        foreach (var (name, text) in StandardRepository.RenderConfigs(_fixture.EngineDir))
        {
            var parsed = ModelConfigLoader.Parse(text, name);
            Assert.Equal(parsed, TextFormatParser.Parse<ModelConfig>(TextFormatPrinter.Print(parsed)));
        }
    }

    [Fact]
    public void SeedsStyleOverridesWithCapitalisedBooleansWork()
    {
        var repository = StandardRepository.Build(_fixture.EngineDir, overrides: StandardRepository.ParseOverrides(
            ["triton_max_batch_size:4,decoupled_mode:True,max_beam_width:1,max_tokens_in_paged_kv_cache:2560,max_attention_window_size:2560,kv_cache_free_gpu_mem_fraction:0.5,exclude_input_in_output:True,enable_kv_cache_reuse:False,batching_strategy:inflight_batching,max_queue_delay_microseconds:600"]));
        var llm = repository.Models["tensorrt_llm"].Llm!;
        Assert.True(llm.Decoupled);
        Assert.Equal(4, llm.MaxBatchSize);
        Assert.Equal(0.5, llm.KvCacheFreeMemoryFraction);
        Assert.Equal(600, llm.MaxQueueDelayMicroseconds);
        Assert.Equal(LlmBatchingStrategy.InflightBatching, llm.BatchingStrategy);
    }

    [Fact]
    public void BadOverridesAreRejected()
    {
        var unknown = Assert.Throws<ArgumentException>(() => StandardRepository.ParseOverrides(["engine_dri:/x"]));
        Assert.Contains("unknown key 'engine_dri'; allowed: engine_dir", unknown.Message);
        Assert.Throws<ArgumentException>(() => StandardRepository.ParseOverrides(["novalue"]));

        var bad = Assert.Throws<ModelRepositoryException>(() => StandardRepository.Build(_fixture.EngineDir,
            overrides: new Dictionary<string, string> { ["batch_scheduler_policy"] = "eager" }));
        Assert.Equal("parameters.batch_scheduler_policy", bad.Key);
        Assert.Contains("allowed: guaranteed_no_evict, max_utilization", bad.Message);

        var missing = Assert.Throws<ModelRepositoryException>(() => StandardRepository.Write(_fixture.RepositoryDir, Path.Combine(_fixture.Root, "absent")));
        Assert.Contains("does not exist", missing.Message);
        Assert.Empty(Directory.EnumerateFileSystemEntries(_fixture.RepositoryDir));
    }

    [Fact]
    public void WriteRefusesToOverwriteUnlessAsked()
    {
        StandardRepository.Write(_fixture.RepositoryDir, _fixture.EngineDir);
        Assert.Throws<IOException>(() => StandardRepository.Write(_fixture.RepositoryDir, _fixture.EngineDir));
        StandardRepository.Write(_fixture.RepositoryDir, _fixture.EngineDir, decoupled: true, overwrite: true);
        Assert.True(ModelRepository.Open(_fixture.RepositoryDir).Models["tensorrt_llm"].Decoupled);
    }

    [Fact]
    public void PathsWithQuotesAndBackslashesSurviveFilling()
    {
        string odd = Path.Combine(_fixture.Root, "we\"ird\\dir");
        Directory.CreateDirectory(odd);
        var repository = StandardRepository.Build(odd);
        Assert.Equal(Path.GetFullPath(odd), repository.Models["tensorrt_llm"].Llm!.EngineDir);
    }
}
