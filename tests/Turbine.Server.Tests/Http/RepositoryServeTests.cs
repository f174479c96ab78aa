using System.Text.Json;
using Turbine.Server.Hosting;
using Turbine.Server.Models;
using Turbine.Server.Repository;

namespace Turbine.Server.Tests.Http;

/// <summary>Serving a model repository on disk as `turbine repo init` writes it (--model-repository).</summary>
public sealed class RepositoryServeTests
{
    [Fact]
    public async Task Repository_on_disk_serves_its_configs_and_generates()
    {
        var dir = Directory.CreateTempSubdirectory("turbine-repo-").FullName;
        try
        {
            StandardRepository.Write(dir, ServerFixture.DemoModel, overrides: StandardRepository.ParseOverrides(["triton_max_batch_size:8,accumulate_tokens:true"]));
            var registry = RepositoryModels.Build(ModelRepository.Open(dir), ModelControlMode.None, null, threads: 1);
            var server = await TurbineServer.StartAsync(new ServerOptions { Host = "127.0.0.1", HttpPort = 0, MetricsPort = -1 }, registry);
            try
            {
                using var http = new HttpClient();
                var config = JsonDocument.Parse(await http.GetStringAsync(server.HttpAddress + "/v2/models/tensorrt_llm/config")).RootElement;
                Assert.Equal(8, config.GetProperty("max_batch_size").GetInt32());
                Assert.Equal("tensorrtllm", config.GetProperty("backend").GetString());
                var meta = JsonDocument.Parse(await http.GetStringAsync(server.HttpAddress + "/v2/models/ensemble")).RootElement;
                Assert.Equal("ensemble", meta.GetProperty("platform").GetString());

                // exclude_input_in_output defaults to true in the filled templates: only generated text comes back.
                var llm = ((TextGenerationModel)registry.Find("ensemble")).Llm;
                var expected = new List<int>();
                await foreach (var o in llm.Executor.Submit(new Engine.Executor.GenerationRequest { PromptIds = llm.Tokenizer.Encode("In the beginning", true), MaxTokens = 6 }))
                    expected.AddRange(o.TokenIds[0]);
                using var response = await http.PostAsync(server.HttpAddress + "/v2/models/ensemble/generate",
                    new StringContent("""{"text_input": "In the beginning", "max_tokens": 6, "bad_words": "", "stop_words": ""}"""));
                var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
                Assert.Equal(llm.Tokenizer.Decode(expected, skipSpecialTokens: true), body.GetProperty("text_output").GetString());

                // accumulate_tokens from the BLS config: each event holds all text so far.
                var stream = await (await http.PostAsync(server.HttpAddress + "/v2/models/tensorrt_llm_bls/generate_stream",
                    new StringContent("""{"text_input": "In the beginning", "max_tokens": 6, "stream": true}"""))).Content.ReadAsStringAsync();
                var last = stream.Split("\n\n", StringSplitOptions.RemoveEmptyEntries)[^1];
                Assert.Equal(llm.Tokenizer.Decode(expected, skipSpecialTokens: true), JsonDocument.Parse(last["data: ".Length..]).RootElement.GetProperty("text_output").GetString());
            }
            finally
            {
                await server.StopAsync();
                await server.DisposeAsync();
                await registry.DisposeAsync();
            }
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

public sealed class RepositoryPollTests
{
    [Fact]
    public async Task Poll_mode_follows_the_repository_directory()
    {
        var dir = Directory.CreateTempSubdirectory("turbine-poll-").FullName;
        try
        {
            StandardRepository.Write(dir, ServerFixture.DemoModel);
            var repository = ModelRepository.Open(dir);
            await using var registry = RepositoryModels.Build(repository, ModelControlMode.Poll, null, threads: 1);
            await using var poller = new RepositoryPoller(repository, registry, TimeSpan.FromHours(1), _ => { });
            var moved = Path.Combine(Path.GetTempPath(), "turbine-poll-moved-" + Guid.NewGuid().ToString("N"));
            Directory.Move(Path.Combine(dir, "postprocessing"), moved);
            poller.Poll();
            Assert.Equal(ModelState.Unavailable, registry.Find("postprocessing").State);
            Assert.Equal(ModelState.Ready, registry.Find("ensemble").State);
            Directory.Move(moved, Path.Combine(dir, "postprocessing"));
            poller.Poll();
            Assert.Equal(ModelState.Ready, registry.Find("postprocessing").State);
            Assert.Equal("postprocessing", registry.Find("postprocessing").RepositoryConfig!.Name);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}

public sealed class RepositoryExplicitTests
{
    [Fact]
    public async Task Explicit_load_rereads_the_config_and_unload_takes_the_model_away()
    {
        var dir = Directory.CreateTempSubdirectory("turbine-explicit-").FullName;
        try
        {
            StandardRepository.Write(dir, ServerFixture.DemoModel);
            await using var registry = RepositoryModels.Build(ModelRepository.Open(dir), ModelControlMode.Explicit, ["ensemble", "preprocessing", "tensorrt_llm", "postprocessing"], threads: 1);
            Assert.Equal(ModelState.Unavailable, registry.Find("tensorrt_llm_bls").State);
            var config = Path.Combine(dir, "tensorrt_llm_bls", "config.pbtxt");
            File.WriteAllText(config, File.ReadAllText(config).Replace("max_batch_size: 64", "max_batch_size: 4", StringComparison.Ordinal));
            registry.SetLoaded("tensorrt_llm_bls", loaded: true);
            Assert.Equal(ModelState.Ready, registry.Find("tensorrt_llm_bls").State);
            Assert.Equal(4, registry.Find("tensorrt_llm_bls").MaxBatchSize);
            registry.SetLoaded("tensorrt_llm_bls", loaded: false);
            Assert.Equal(ModelState.Unavailable, registry.Find("tensorrt_llm_bls").State);
            Assert.Throws<InferenceException>(() => registry.SetLoaded("nope", loaded: true));
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
