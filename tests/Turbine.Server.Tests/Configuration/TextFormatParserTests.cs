using Google.Protobuf;
using Inference;
using Turbine.Server.Configuration;

namespace Turbine.Server.Tests.Configuration;

public class TextFormatParserTests
{
    [Fact]
    public void ParsesTheSeedsTensorRtLlmConfig()
    {
        var config = TextFormatParser.Parse<ModelConfig>(SeedConfigs.TensorRtLlm, "tensorrt_llm/config.pbtxt");

        Assert.Equal("tensorrt_llm", config.Name);
        Assert.Equal("tensorrtllm", config.Backend);
        Assert.Equal(8, config.MaxBatchSize);
        Assert.True(config.ModelTransactionPolicy.Decoupled);
        Assert.Equal(ModelConfig.SchedulingChoiceOneofCase.DynamicBatching, config.SchedulingChoiceCase);
        Assert.Equal([8], config.DynamicBatching.PreferredBatchSize);
        Assert.Equal(600UL, config.DynamicBatching.MaxQueueDelayMicroseconds);
        Assert.Equal(["input_ids", "input_lengths", "request_output_len", "lora_task_id"], config.Input.Select(i => i.Name));
        Assert.Equal([-1L], config.Input[0].Dims);
        Assert.True(config.Input[0].AllowRaggedBatch);
        Assert.NotNull(config.Input[1].Reshape);
        Assert.Empty(config.Input[1].Reshape.Shape);
        Assert.Equal(DataType.TypeUint64, config.Input[3].DataType);
        Assert.True(config.Input[3].Optional);
        Assert.Equal([-1L, -1L], config.Output[0].Dims);
        Assert.Equal(ModelInstanceGroup.Types.Kind.Cpu, config.InstanceGroup[0].Kind);
        Assert.Equal("2560", config.Parameters["max_tokens_in_paged_kv_cache"].StringValue);
        Assert.Equal("${batch_scheduler_policy}", config.Parameters["batch_scheduler_policy"].StringValue);
    }

    [Fact]
    public void ParsesEnsembleStepsWithMaps()
    {
        var config = TextFormatParser.Parse<ModelConfig>(SeedConfigs.Ensemble, "ensemble/config.pbtxt");

        Assert.Equal("ensemble", config.Platform);
        var steps = config.EnsembleScheduling.Step;
        Assert.Equal(["preprocessing", "tensorrt_llm", "postprocessing"], steps.Select(s => s.ModelName));
        Assert.Equal(-1L, steps[0].ModelVersion);
        Assert.Equal("text_input", steps[0].InputMap["QUERY"]);
        Assert.Equal(3, steps[0].OutputMap.Count);
        Assert.Equal("_TOKENS_BATCH", steps[1].OutputMap["output_ids"]);
    }

    [Fact]
    public void AcceptsAlternativeSyntax()
    {
        const string text = """
            name: 'single\'quoted' ; platform: "a" "b"
            version_policy < specific < versions: 1 versions: [2, 3] > >
            input { name: "x" dims: 0x10 dims: 010 dims: -7 data_type: 8 }
            parameters [ { key: "k1" value { string_value: "v\x41\101\u00e9\n" } }, { key: "k2" } ]
            optimization { cuda { graphs: t } priority: PRIORITY_MAX }
            sequence_batching { control_input { control { fp32_false_true: [ 0, 1.5e1, -.5, 2f ] } } }
            """;
        var config = TextFormatParser.Parse<ModelConfig>(text);

        Assert.Equal("single'quoted", config.Name);
        Assert.Equal("ab", config.Platform);
        Assert.Equal([1L, 2L, 3L], config.VersionPolicy.Specific.Versions);
        Assert.Equal([16L, 8L, -7L], config.Input[0].Dims);
        Assert.Equal(DataType.TypeInt32, config.Input[0].DataType);
        Assert.Equal("vAA\u00e9\n", config.Parameters["k1"].StringValue);
        Assert.Equal("", config.Parameters["k2"].StringValue);
        Assert.True(config.Optimization.Cuda.Graphs);
        Assert.Equal(ModelOptimizationPolicy.Types.ModelPriority.PriorityMax, config.Optimization.Priority);
        Assert.Equal([0f, 15f, -0.5f, 2f], config.SequenceBatching.ControlInput[0].Control[0].Fp32FalseTrue);
    }

    [Fact]
    public void EmptyTextIsAnEmptyMessage()
    {
        Assert.Equal(new ModelConfig(), TextFormatParser.Parse<ModelConfig>("  # nothing\n"));
    }

    [Theory]
    [InlineData("name: \"a\"\nbogus: 1", 2, 1, "unknown field 'bogus' in inference.ModelConfig; expected one of: name, platform")]
    [InlineData("input { name: \"a\" dimz: [1] }", 1, 19, "unknown field 'dimz' in inference.ModelInput")]
    [InlineData("max_batch_size: ${triton_max_batch_size}", 1, 17, "unfilled template placeholder ${triton_max_batch_size} for field 'max_batch_size'")]
    [InlineData("model_transaction_policy {\n  decoupled: ${decoupled_mode}\n}", 2, 14, "unfilled template placeholder ${decoupled_mode} for field 'decoupled'")]
    [InlineData("name \"a\"", 1, 6, "expected ':' after field 'name'")]
    [InlineData("name: a", 1, 7, "expected a quoted string for field 'name', got 'a'")]
    [InlineData("name: \"abc", 1, 7, "unterminated string literal")]
    [InlineData("name: \"a\\qb\"", 1, 9, "invalid escape sequence '\\q'")]
    [InlineData("max_batch_size: 1.5", 1, 17, "expected an integer for int32 field 'max_batch_size'")]
    [InlineData("max_batch_size: 4294967296", 1, 17, "out of range for int32 field 'max_batch_size'")]
    [InlineData("response_cache { enable: maybe }", 1, 26, "expected true or false for bool field 'enable'")]
    [InlineData("input { data_type: TYPE_FLOAT }", 1, 20, "invalid value 'TYPE_FLOAT' for enum inference.DataType field 'data_type'; allowed: TYPE_INVALID, TYPE_BOOL")]
    [InlineData("input { data_type: 99 }", 1, 20, "invalid value '99' for enum inference.DataType")]
    [InlineData("name: \"a\" name: \"b\"", 1, 11, "field 'name' is specified more than once")]
    [InlineData("dynamic_batching { }\nensemble_scheduling { }", 2, 1, "field 'ensemble_scheduling' and field 'dynamic_batching' are both set, but only one member of oneof 'scheduling_choice' may be")]
    [InlineData("name: [\"a\"]", 1, 7, "field 'name' is not repeated")]
    [InlineData("input [ { name: \"a\" } { name: \"b\" } ]", 1, 23, "expected ',' or ']' in the list of 'input'")]
    [InlineData("input { name: \"a\"", 1, 18, "expected '}' to close inference.ModelInput, got end of file")]
    [InlineData("input: 5", 1, 8, "expected '{' to start message field 'input'")]
    [InlineData("parameters { key: \"a\" val { } }", 1, 23, "unknown field 'val' in an entry of map 'parameters'; expected one of: key, value")]
    [InlineData("parameters { key: 1 }", 1, 19, "expected a quoted string for field 'parameters.key'")]
    [InlineData("name: \"a\" }", 1, 11, "expected a field name of inference.ModelConfig, got '}'")]
    [InlineData("name: \"a\" @", 1, 11, "unexpected character '@'")]
    [InlineData("input { dims: [ 1, ] }", 1, 20, "expected an integer for int64 field 'dims', got ']'")]
    [InlineData("name: \"\\400\"", 1, 8, "octal escape is larger than \\377")]
    public void ReportsErrorsWithLineAndColumn(string text, int line, int column, string expected)
    {
        var error = Assert.Throws<TextFormatException>(() => TextFormatParser.Parse<ModelConfig>(text, "m/config.pbtxt"));
        Assert.Equal("m/config.pbtxt", error.File);
        Assert.Equal((line, column), (error.Line, error.Column));
        Assert.Contains(expected, error.Problem);
        Assert.StartsWith($"m/config.pbtxt:{line}:{column}: ", error.Message);
    }

    [Theory]
    [InlineData(nameof(SeedConfigs.TensorRtLlm))]
    [InlineData(nameof(SeedConfigs.Preprocessing))]
    [InlineData(nameof(SeedConfigs.Postprocessing))]
    [InlineData(nameof(SeedConfigs.Ensemble))]
    public void RoundTripsThroughThePrinter(string seed)
    {
        string text = (string)typeof(SeedConfigs).GetField(seed)!.GetValue(null)!;
        var parsed = TextFormatParser.Parse<ModelConfig>(text);
        string printed = TextFormatPrinter.Print(parsed);
        Assert.Equal(parsed, TextFormatParser.Parse<ModelConfig>(printed));
        Assert.Equal(printed, TextFormatPrinter.Print(TextFormatParser.Parse<ModelConfig>(printed)));
    }

    [Fact]
    public void RoundTripsAwkwardValues()
    {
        var config = new ModelConfig
        {
            Name = "quote\" backslash\\ tab\t newline\n 中文 \u0001",
            VersionPolicy = new ModelVersionPolicy { All = new ModelVersionPolicy.Types.All() },
            SequenceBatching = new ModelSequenceBatching
            {
                ControlInput =
                {
                    new ModelSequenceBatching.Types.ControlInput
                    {
                        Control = { new ModelSequenceBatching.Types.Control { Fp32FalseTrue = { 1e-5f, -0f, float.MaxValue, float.PositiveInfinity } } },
                    },
                },
                State = { new ModelSequenceBatching.Types.State { InitialState = { new ModelSequenceBatching.Types.InitialState { ZeroData = false } } } },
            },
            ModelWarmup = { new ModelWarmup { Inputs = { ["x"] = new ModelWarmup.Types.Input { Dims = { long.MinValue, long.MaxValue } } } } },
        };
        config.Input.Add(new ModelInput { Name = "a", Reshape = new ModelTensorReshape() });
        string printed = TextFormatPrinter.Print(config);
        var reparsed = TextFormatParser.Parse<ModelConfig>(printed);
        Assert.Equal(config, reparsed);
        Assert.Equal(ModelSequenceBatching.Types.InitialState.StateDataOneofCase.ZeroData,
            reparsed.SequenceBatching.State[0].InitialState[0].StateDataCase);
        Assert.Contains("中文", printed);
    }

    [Fact]
    public void PrintsTritonLayout()
    {
        var config = TextFormatParser.Parse<ModelConfig>("name: \"m\" input [ { name: \"x\" dims: [ -1, 2 ] } ] parameters { key: \"k\" value { string_value: \"v\" } }");
        Assert.Equal("""
            name: "m"
            input [
              {
                name: "x"
                dims: [ -1, 2 ]
              }
            ]
            parameters {
              key: "k"
              value {
                string_value: "v"
              }
            }

            """.ReplaceLineEndings("\n"), TextFormatPrinter.Print(config));
    }

    [Fact]
    public void MergesIntoAnExistingMessage()
    {
        var config = new ModelConfig { Name = "kept" };
        TextFormatParser.Merge(config, "max_batch_size: 3");
        Assert.Equal(("kept", 3), (config.Name, config.MaxBatchSize));
        Assert.IsAssignableFrom<IMessage>(config);
    }
}
