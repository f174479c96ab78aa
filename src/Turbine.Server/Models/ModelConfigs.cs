using Inference;

namespace Turbine.Server.Models;

/// <summary>Builds the <see cref="ModelConfig"/> (Triton's model_config.proto) a served model reports from its metadata.</summary>
public static class ModelConfigs
{
    /// <summary>The configuration of <paramref name="model"/> as config.pbtxt would state it.</summary>
    public static ModelConfig Describe(ServedModel model)
    {
        if (model.RepositoryConfig is { } fromRepository)
            return fromRepository;
        var config = new ModelConfig
        {
            Name = model.Name,
            Platform = model.Platform == "ensemble" ? "ensemble" : "",
            Backend = model.Backend,
            MaxBatchSize = model.MaxBatchSize,
            VersionPolicy = new ModelVersionPolicy { Latest = new ModelVersionPolicy.Types.Latest { NumVersions = 1 } },
            ModelTransactionPolicy = new ModelTransactionPolicy { Decoupled = model.Decoupled },
        };
        foreach (var input in model.Inputs)
            config.Input.Add(new ModelInput { Name = input.Name, DataType = ToProto(input.DataType), Dims = { input.Dims }, Optional = input.Optional });
        foreach (var output in model.Outputs)
            config.Output.Add(new ModelOutput { Name = output.Name, DataType = ToProto(output.DataType), Dims = { output.Dims } });
        foreach (var (key, value) in model.Parameters)
            config.Parameters[key] = new ModelParameter { StringValue = value };
        if (model.EnsembleSteps.Count > 0)
        {
            config.EnsembleScheduling = new ModelEnsembling();
            foreach (var step in model.EnsembleSteps)
                config.EnsembleScheduling.Step.Add(new ModelEnsembling.Types.Step { ModelName = step, ModelVersion = -1 });
        }
        else
            config.InstanceGroup.Add(new ModelInstanceGroup { Name = model.Name + "_0", Kind = ModelInstanceGroup.Types.Kind.Cpu, Count = 1 });
        return config;
    }

    private static DataType ToProto(string dataType) => dataType switch
    {
        DataTypes.Bool => DataType.TypeBool,
        DataTypes.Int32 => DataType.TypeInt32,
        DataTypes.Int64 => DataType.TypeInt64,
        DataTypes.UInt32 => DataType.TypeUint32,
        DataTypes.UInt64 => DataType.TypeUint64,
        DataTypes.Fp32 => DataType.TypeFp32,
        DataTypes.Fp64 => DataType.TypeFp64,
        DataTypes.Bytes => DataType.TypeString,
        _ => DataType.TypeInvalid,
    };
}
