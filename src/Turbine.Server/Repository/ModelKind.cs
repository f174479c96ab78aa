namespace Turbine.Server.Repository;

/// <summary>What serves a model of the repository.</summary>
public enum ModelKind
{
    /// <summary>The LLM executor: <c>backend: "tensorrtllm"</c> or <c>backend: "turbine"</c>.</summary>
    Llm,
    /// <summary>The built-in tokenizer that turns text into ids: the python model named <c>preprocessing</c>.</summary>
    Preprocessing,
    /// <summary>The built-in detokenizer that turns ids into text: the python model named <c>postprocessing</c>.</summary>
    Postprocessing,
    /// <summary>The built-in business-logic model that chains the three above: the python model named <c>tensorrt_llm_bls</c>.</summary>
    Bls,
    /// <summary><c>platform: "ensemble"</c>: steps run by the server, wired by tensor name.</summary>
    Ensemble,
}
