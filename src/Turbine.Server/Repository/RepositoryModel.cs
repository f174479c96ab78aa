using Inference;

namespace Turbine.Server.Repository;

/// <summary>One loaded model: its configuration, the versions served, and what runs it.</summary>
public sealed record RepositoryModel
{
    /// <summary>Model name (config name, equal to its directory name).</summary>
    public required string Name { get; init; }

    /// <summary>What serves the model.</summary>
    public required ModelKind Kind { get; init; }

    /// <summary>The parsed config.pbtxt (with the name filled in when the file left it out).</summary>
    public required ModelConfig Config { get; init; }

    /// <summary>The config file path, or a descriptive name for generated repositories.</summary>
    public required string ConfigFile { get; init; }

    /// <summary>The model directory; null for models built in memory.</summary>
    public string? Directory { get; init; }

    /// <summary>The versions served under the version policy, ascending.</summary>
    public required IReadOnlyList<long> Versions { get; init; }

    /// <summary>Typed parameters when <see cref="Kind"/> is <see cref="ModelKind.Llm"/>.</summary>
    public LlmModelOptions? Llm { get; init; }

    /// <summary>Typed parameters when <see cref="Kind"/> is preprocessing or postprocessing.</summary>
    public TokenizerModelOptions? Tokenizer { get; init; }

    /// <summary>Typed parameters when <see cref="Kind"/> is <see cref="ModelKind.Bls"/>.</summary>
    public BlsModelOptions? Bls { get; init; }

    /// <summary>Things worth logging that did not stop the load, e.g. parameters left as template placeholders.</summary>
    public IReadOnlyList<string> Warnings { get; init; } = [];

    /// <summary>Whether the model streams (model_transaction_policy.decoupled).</summary>
    public bool Decoupled => Config.ModelTransactionPolicy?.Decoupled ?? false;

    /// <summary>The highest version served.</summary>
    public long LatestVersion => Versions[^1];
}
