namespace Turbine.Engine.Sampling;

/// <summary>
/// One logit row's sampling parameters, as <see cref="Backends.IComputeBackend.Sample"/> applies them (the semantics are
/// defined there). <paramref name="Uniform"/> is the row's random number, drawn on the host from the request's own
/// seeded stream so that a seed gives the same text on every backend.
/// </summary>
/// <param name="Temperature">Softmax temperature; a row is greedy when it is ≤ 0 or <paramref name="TopK"/> is 1.</param>
/// <param name="TopK">Keep the k most likely candidates; 0 keeps all.</param>
/// <param name="TopP">Keep the shortest prefix of candidates whose probability reaches this mass; 1 keeps all.</param>
/// <param name="RepetitionPenalty">Divides positive (multiplies other) logits of the row's penalised tokens; 1 is none.</param>
/// <param name="PresencePenalty">Subtracted once from the logit of each penalised token generated at least once.</param>
/// <param name="FrequencyPenalty">Subtracted per generation from the logit of each penalised token.</param>
/// <param name="Uniform">The draw u in [0, 1] that picks the sampled token; unused by greedy rows.</param>
/// <param name="WantLogProb">Whether the chosen token's log probability is computed (otherwise 0 is written).</param>
public readonly record struct SamplingRow(float Temperature, int TopK, float TopP, float RepetitionPenalty, float PresencePenalty,
    float FrequencyPenalty, float Uniform, bool WantLogProb)
{
    /// <summary>True when the row's token is the first index of its largest logit.</summary>
    public bool IsGreedy => Temperature <= 0f || TopK == 1;
}
