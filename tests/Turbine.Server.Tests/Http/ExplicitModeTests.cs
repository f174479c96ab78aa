using System.Text.Json;
using Turbine.Server.Models;

namespace Turbine.Server.Tests.Http;

public sealed class ExplicitServerFixture : ServerFixture
{
    public override ModelControlMode Mode => ModelControlMode.Explicit;
}

/// <summary>The repository extension in explicit model-control mode (--load-model ensemble at startup).</summary>
public sealed class ExplicitModeTests(ExplicitServerFixture fx) : IClassFixture<ExplicitServerFixture>
{
    [Fact]
    public async Task Load_and_unload_change_readiness()
    {
        Assert.Equal(200, (await fx.Get("/v2/models/ensemble/ready")).Status);
        Assert.Equal(400, (await fx.Get("/v2/models/tensorrt_llm_bls/ready")).Status);
        Assert.Equal(503, (await fx.PostJson("/v2/models/tensorrt_llm_bls/generate", """{"text_input": "a", "max_tokens": 2}""")).Status);

        Assert.Equal(200, (await fx.PostJson("/v2/repository/models/tensorrt_llm_bls/load", "{}")).Status);
        Assert.Equal(200, (await fx.Get("/v2/models/tensorrt_llm_bls/ready")).Status);
        Assert.Equal(200, (await fx.PostJson("/v2/models/tensorrt_llm_bls/generate", """{"text_input": "a", "max_tokens": 2}""")).Status);

        Assert.Equal(200, (await fx.PostJson("/v2/repository/models/tensorrt_llm_bls/unload", "{}")).Status);
        using var response = await fx.Client.PostAsync(fx.Url + "/v2/repository/index", new StringContent(""));
        var index = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.Equal("UNAVAILABLE", index.EnumerateArray().Single(m => m.GetProperty("name").GetString() == "tensorrt_llm_bls").GetProperty("state").GetString());
        Assert.Equal(400, (await fx.PostJson("/v2/repository/models/nope/load", "{}")).Status);
    }
}
