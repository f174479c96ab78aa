using System.Text.Json;
using Turbine.Core.Checkpoints;
using Turbine.Core.Models;

namespace Turbine.Core.Tests;

public sealed class HfModelConfigTests
{
    private static HfModelConfig Parse(string json)
    {
        using var doc = JsonDocument.Parse(json);
        return HfModelConfig.Parse("config.json", doc.RootElement);
    }

    private const string Llama3Classic = """
        {"architectures":["LlamaForCausalLM"],"model_type":"llama","vocab_size":128256,"hidden_size":4096,"intermediate_size":14336,
         "num_hidden_layers":32,"num_attention_heads":32,"num_key_value_heads":8,"rms_norm_eps":1e-5,"max_position_embeddings":131072,
         "rope_theta":500000.0,"rope_scaling":{"factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
         "original_max_position_embeddings":8192,"rope_type":"llama3"},"tie_word_embeddings":false,"bos_token_id":128000,
         "eos_token_id":[128001,128008,128009],"torch_dtype":"bfloat16"}
        """;

    [Fact]
    public void ReadsTransformers4LayoutOfLlama31()
    {
        var c = Parse(Llama3Classic);
        Assert.Equal("LlamaForCausalLM", c.Architecture);
        Assert.Equal(128, c.HeadDim);
        Assert.Equal(8, c.NumKvHeads);
        Assert.Equal(new RopeScaling(RopeScalingType.Llama3, 500000.0, 8.0, 1.0, 4.0, 8192), c.Rope);
        Assert.Equal([128001, 128008, 128009], c.EosTokenIds);
        Assert.False(c.QkvBias);
        Assert.All(c.SlidingWindows, w => Assert.Equal(0, w));
        Assert.Equal("bfloat16", c.TorchDtype);
    }

    [Fact]
    public void ReadsTransformers5RopeParameters()
    {
        var c = Parse("""
            {"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,
             "num_attention_heads":2,"rope_parameters":{"rope_type":"linear","factor":2.0,"rope_theta":1000.0}}
            """);
        Assert.Equal(RopeScalingType.Linear, c.Rope.Type);
        Assert.Equal(2.0, c.Rope.Factor);
        Assert.Equal(1000.0, c.Rope.Theta);
        Assert.Equal(2, c.NumKvHeads);
        Assert.Equal(4, c.HeadDim);
    }

    [Fact]
    public void Qwen2HasQkvBiasAndSlidesOnlyWhenAskedFromMaxWindowLayers()
    {
        const string baseJson = """
            "architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","vocab_size":10,"hidden_size":8,"intermediate_size":16,
            "num_hidden_layers":4,"num_attention_heads":2,"num_key_value_heads":1,"sliding_window":32,"max_window_layers":2
            """;
        var off = Parse("{" + baseJson + ",\"use_sliding_window\":false}");
        Assert.True(off.QkvBias);
        Assert.False(off.OutputBias);
        Assert.Equal([0, 0, 0, 0], off.SlidingWindows);
        var on = Parse("{" + baseJson + ",\"use_sliding_window\":true}");
        Assert.Equal([0, 0, 32, 32], on.SlidingWindows);
    }

    [Fact]
    public void MistralSlidesOnEveryLayerAndLayerTypesOverride()
    {
        const string baseJson = """
            "architectures":["MistralForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":16,
            "num_hidden_layers":2,"num_attention_heads":2,"sliding_window":4096
            """;
        Assert.Equal([4096, 4096], Parse("{" + baseJson + "}").SlidingWindows);
        Assert.Equal([0, 4096], Parse("{" + baseJson + ",\"layer_types\":[\"full_attention\",\"sliding_attention\"]}").SlidingWindows);
    }

    private static HfModelConfig ParseYarn(string ropeScaling, string extra = "") => Parse($$"""
        {"architectures":["Qwen2ForCausalLM"],"model_type":"qwen2","vocab_size":10,"hidden_size":8,"intermediate_size":16,
         "num_hidden_layers":1,"num_attention_heads":2,"max_position_embeddings":32768,"rope_theta":1000000.0{{extra}},
         "rope_scaling":{{ropeScaling}}}
        """);

    [Fact]
    public void ReadsQwen25YarnWithTransformersDefaults()
    {
        // Qwen2.5's long-context recipe, in the transformers 4.x layout with the old "type" key.
        var c = ParseYarn("""{"type":"yarn","factor":4.0,"original_max_position_embeddings":32768}""");
        Assert.Equal(new RopeScaling(RopeScalingType.Yarn, 1000000.0, 4.0, OriginalMaxPositionEmbeddings: 32768, Yarn: new YarnParameters()), c.Rope);
        Assert.Equal(new YarnParameters(32.0, 1.0, null, null, null, true), c.Rope.Yarn);
    }

    [Fact]
    public void ReadsEveryYarnParameterFromRopeParameters()
    {
        var c = Parse("""
            {"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,
             "num_attention_heads":2,"max_position_embeddings":163840,
             "rope_parameters":{"rope_type":"yarn","rope_theta":10000.0,"factor":40,"original_max_position_embeddings":4096,
             "beta_fast":16,"beta_slow":2,"mscale":1.0,"mscale_all_dim":0.8,"attention_factor":1.25,"truncate":false,
             "partial_rotary_factor":1.0}}
            """);
        Assert.Equal(new RopeScaling(RopeScalingType.Yarn, 10000.0, 40.0, OriginalMaxPositionEmbeddings: 4096,
            Yarn: new YarnParameters(16.0, 2.0, 1.25, 1.0, 0.8, false)), c.Rope);
    }

    [Fact]
    public void YarnFillsTheOriginalContextAndANullFactorLikeTransformers()
    {
        // Without original_max_position_embeddings transformers uses max_position_embeddings; a null factor is their ratio;
        // betas of 0 are read with `or`, so they mean the defaults.
        var c = ParseYarn("""{"rope_type":"yarn","factor":null,"original_max_position_embeddings":8192,"beta_fast":0,"beta_slow":null}""");
        Assert.Equal(4.0, c.Rope.Factor);
        Assert.Equal(new YarnParameters(), c.Rope.Yarn);
        Assert.Equal(32768, ParseYarn("""{"rope_type":"yarn","factor":2.0}""").Rope.OriginalMaxPositionEmbeddings);
    }

    [Theory]
    [InlineData("""{"rope_type":"yarn","original_max_position_embeddings":4096}""", "", "'factor' is missing")]
    [InlineData("""{"rope_type":"yarn","factor":-4.0}""", "", "'factor' must be positive, not -4")]
    [InlineData("""{"rope_type":"yarn","factor":"4"}""", "", "'factor' should be a number")]
    [InlineData("""{"rope_type":"yarn","factor":4.0,"original_max_position_embeddings":0}""", "", "'original_max_position_embeddings' must be positive, not 0")]
    [InlineData("""{"rope_type":"yarn","factor":4.0,"original_max_position_embeddings":4096.5}""", "", "'original_max_position_embeddings' should be an integer")]
    [InlineData("""{"rope_type":"yarn","factor":4.0,"beta_fast":-32}""", "", "'beta_fast' must be positive, not -32")]
    [InlineData("""{"rope_type":"yarn","factor":4.0,"beta_fast":2,"beta_slow":4}""", "", "'beta_fast' (2) must not be below 'beta_slow' (4)")]
    [InlineData("""{"rope_type":"yarn","factor":4.0,"attention_factor":0}""", "", "'attention_factor' must be positive, not 0")]
    [InlineData("""{"rope_type":"yarn","factor":4.0,"mscale":-1}""", "", "'mscale' must not be negative")]
    [InlineData("""{"rope_type":"yarn","factor":4.0,"mscale_all_dim":"1"}""", "", "'mscale_all_dim' should be a number")]
    [InlineData("""{"rope_type":"yarn","factor":4.0,"truncate":"no"}""", "", "'truncate' should be true or false, not \"no\"")]
    [InlineData("""{"rope_type":"yarn","factor":4.0,"beta_fst":16}""", "", "'beta_fst' is not a yarn parameter")]
    [InlineData("""{"rope_type":"yarn","factor":4.0,"partial_rotary_factor":0.5}""", "", "'partial_rotary_factor' 0.5 is not supported with yarn")]
    [InlineData("""{"rope_type":"yarn","factor":4.0}""", ""","partial_rotary_factor":0.25""", "'partial_rotary_factor' 0.25 is not supported with yarn")]
    public void BadYarnParametersNameTheField(string ropeScaling, string extra, string expected)
    {
        var e = Assert.Throws<CheckpointException>(() => ParseYarn(ropeScaling, extra));
        Assert.Contains(expected, e.Message);
        Assert.StartsWith("config.json: ", e.Message);
    }

    [Fact]
    public void UnsupportedRopeTypeListsTheSupportedOnes()
    {
        var e = Assert.Throws<CheckpointException>(() => ParseYarn("""{"rope_type":"longrope","factor":4.0}"""));
        Assert.Contains("'longrope' is not supported (supported: default, linear, dynamic, llama3, yarn)", e.Message);
    }

    [Theory]
    [InlineData("""{"vocab_size":10}""", "architectures")]
    [InlineData("""{"architectures":["LlamaForCausalLM"],"vocab_size":10,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2}""", "hidden_size")]
    [InlineData("""{"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":3,"num_key_value_heads":2}""", "num_key_value_heads")]
    [InlineData("""{"architectures":["LlamaForCausalLM"],"vocab_size":"ten","hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2}""", "vocab_size")]
    [InlineData("""{"architectures":["LlamaForCausalLM"],"vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,"num_attention_heads":2,"rope_scaling":{"rope_type":"yarn2","factor":2}}""", "yarn2")]
    public void BadConfigsNameTheKey(string json, string expected)
    {
        var e = Assert.Throws<CheckpointException>(() => Parse(json));
        Assert.Contains(expected, e.Message);
        Assert.Contains("config.json", e.Message);
    }
}
