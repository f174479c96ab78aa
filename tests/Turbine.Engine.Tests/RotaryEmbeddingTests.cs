using Turbine.Core.Models;
using Turbine.Engine.Models;

namespace Turbine.Engine.Tests;

/// <summary>YaRN frequencies and attention factor against the numbers transformers 5.17 computes for the same configs.</summary>
public sealed class RotaryEmbeddingTests
{
    private sealed record Case(RopeScaling Rope, int HeadDim, int MaxPositions, double AttentionFactor, double[] InvFreq);

    // inv_freq (float32) and attention_scaling of transformers 5.17.0's rotary embedding modules, printed on the GPU machine.
    // "qwen2.5", "deepseek" and "explicit" are those cases of `python3 tools/reference/print_rope.py`; "llama-yarn" is
    // `python3 -c "import json;from transformers import AutoConfig as A;from transformers.models.llama.modeling_llama import
    // LlamaRotaryEmbedding as E;e=E(config=A.from_pretrained('tests/fixtures/models/llama-yarn'));print(json.dumps([float(v) for v
    // in e.inv_freq]),repr(e.attention_scaling))"` on the fixture as tools/reference/make_references.py wrote it.
    private static readonly Dictionary<string, Case> Cases = new()
    {
        // Qwen2.5's recipe: factor 4 over an original context equal to max_position_embeddings; defaults otherwise.
        ["qwen2.5"] = new(
            new RopeScaling(RopeScalingType.Yarn, 1000000.0, 4.0, OriginalMaxPositionEmbeddings: 32768, Yarn: new YarnParameters()),
            32, 32768, 1.138629436111989,
            [1.0, 0.4216965138912201, 0.17782793939113617, 0.07498941570520401, 0.03162277862429619, 0.01333521492779255,
             0.00477990135550499, 0.001659961650148034, 0.0005499999970197678, 0.00016867858357727528, 4.4456985051510856e-05,
             1.8747356079984456e-05, 7.905693564680405e-06, 3.3338035336782923e-06, 1.405853367941745e-06, 5.928434347879374e-07]),
        // DeepSeek-style: the attention factor is the ratio of the mscale-weighted formulas.
        ["deepseek"] = new(
            new RopeScaling(RopeScalingType.Yarn, 10000.0, 40.0, OriginalMaxPositionEmbeddings: 4096,
                Yarn: new YarnParameters(Mscale: 1.0, MscaleAllDim: 0.8)),
            32, 163840, 1.0569662567531275,
            [1.0, 0.5623413324356079, 0.3162277638912201, 0.17782793939113617, 0.10000000149011612, 0.05623412877321243,
             0.027218176051974297, 0.012829016894102097, 0.005821428261697292, 0.0024903686717152596, 0.0009599771583452821,
             0.00029214590904302895, 2.499999936844688e-05, 1.4058532542549074e-05, 7.905694474175107e-06, 4.445698323252145e-06]),
        // Given attention factor and betas, no truncation, and the original context left to max_position_embeddings.
        ["explicit"] = new(
            new RopeScaling(RopeScalingType.Yarn, 10000.0, 8.0, Yarn: new YarnParameters(16.0, 2.0, AttentionFactor: 1.25, Truncate: false)),
            16, 256, 1.25,
            [1.0, 0.28740859031677246, 0.04244179651141167, 0.0039528473280370235, 0.0012499999720603228, 0.00039528473280370235,
             0.0001250000059371814, 3.9528473280370235e-05]),
        ["llama-yarn"] = new(
            new RopeScaling(RopeScalingType.Yarn, 10000.0, 4.0, OriginalMaxPositionEmbeddings: 32, Yarn: new YarnParameters()),
            16, 128, 1.138629436111989,
            [1.0, 0.19764235615730286, 0.02500000037252903, 0.007905694656074047, 0.0024999999441206455, 0.0007905694656074047,
             0.0002500000118743628, 7.905694656074047e-05]),
    };

    public static TheoryData<string> Names() => [.. Cases.Keys];

    [Theory]
    [MemberData(nameof(Names))]
    public void YarnMatchesTransformers(string name)
    {
        var c = Cases[name];
        var rotary = new RotaryEmbedding(c.Rope, c.HeadDim, c.MaxPositions);
        Assert.Equal(c.AttentionFactor, rotary.AttentionFactor, 1e-7);
        Assert.Equal(c.InvFreq.Length, rotary.InverseFrequencies.Length);
        for (int i = 0; i < c.InvFreq.Length; i++)
        {
            // transformers works in float32: agree to a few float32 ulps.
            double error = Math.Abs(rotary.InverseFrequencies[i] - c.InvFreq[i]) / c.InvFreq[i];
            Assert.True(error < 1e-6, $"{name} inv_freq[{i}]: {rotary.InverseFrequencies[i]:R} vs transformers {c.InvFreq[i]:R}");
        }
    }

    [Fact]
    public void YarnScalesCosAndSinByTheAttentionFactor()
    {
        var c = Cases["llama-yarn"];
        var rotary = new RotaryEmbedding(c.Rope, c.HeadDim, c.MaxPositions);
        int half = rotary.HalfDim;
        var cos = new float[2 * half];
        var sin = new float[2 * half];
        rotary.Fill([0, 50], 51, cos, sin);
        for (int i = 0; i < half; i++)
        {
            Assert.Equal((float)c.AttentionFactor, cos[i]);
            Assert.Equal(0f, sin[i]);
            float angle = (float)c.InvFreq[i] * 50;
            Assert.Equal(MathF.Cos(angle) * c.AttentionFactor, cos[half + i], 1e-6);
            Assert.Equal(MathF.Sin(angle) * c.AttentionFactor, sin[half + i], 1e-6);
        }
    }

    [Fact]
    public void OtherTypesKeepCosAndSinUnscaled()
    {
        var rotary = new RotaryEmbedding(new RopeScaling(RopeScalingType.Linear, 10000.0, 2.0), 16, 128);
        Assert.Equal(1.0, rotary.AttentionFactor);
        var cos = new float[rotary.HalfDim];
        rotary.Fill([0], 1, cos, new float[rotary.HalfDim]);
        Assert.All(cos, v => Assert.Equal(1f, v));
    }
}
