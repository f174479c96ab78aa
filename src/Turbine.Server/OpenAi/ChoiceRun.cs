using System.Text;
using Turbine.Engine.Executor;
using Turbine.Server.Models;

namespace Turbine.Server.OpenAi;

/// <summary>
/// One choice of a completion: runs its generation, detokenizes incrementally, and applies stop strings on the text
/// (the first occurrence ends the choice, is cut off, and cancels the generation). Text that could still turn into a
/// stop string is held back from streaming until it is resolved.
/// </summary>
internal sealed class ChoiceRun(int index, int[] promptIds, GenerationRequest request, string[] stop)
{
    private readonly StringBuilder _text = new();
    private readonly int _holdBack = stop.Length == 0 ? 0 : stop.Max(s => s.Length) - 1;
    private int _sent;

    public int Index { get; } = index;
    public int[] PromptIds { get; } = promptIds;
    public List<int> Tokens { get; } = [];
    public List<float> LogProbs { get; } = [];
    public string FinishReason { get; private set; } = "length";
    public string Text => _text.ToString();

    /// <summary>Runs to the end, calling <paramref name="onText"/> with each piece of text that is safe to send.</summary>
    public async Task RunAsync(TextGenerationModel model, long startTicks, Func<ChoiceRun, string, Task>? onText, CancellationToken cancellationToken)
    {
        var llm = model.Llm;
        var detokenizer = llm.Tokenizer.CreateIncrementalDecoder(skipSpecialTokens: true);
        bool stopped = false;
        await foreach (var output in llm.GenerateTimed(request, model.Statistics, startTicks, cancellationToken).ConfigureAwait(false))
        {
            foreach (int id in output.TokenIds[0])
                _text.Append(detokenizer.Push(id));
            Tokens.AddRange(output.TokenIds[0]);
            if (output.LogProbs is { } lp)
                LogProbs.AddRange(lp[0]);
            if (output.IsFinal)
            {
                _text.Append(detokenizer.Flush());
                FinishReason = output.FinishReasons[0] == Engine.Executor.FinishReason.Length ? "length" : "stop";
            }
            if (FindStop() is int cut)
            {
                _text.Length = cut;
                FinishReason = "stop";
                stopped = true;
            }
            if (onText is not null)
            {
                int safe = stopped || output.IsFinal ? _text.Length : Math.Max(_sent, _text.Length - _holdBack);
                if (safe > _sent)
                {
                    await onText(this, _text.ToString(_sent, safe - _sent)).ConfigureAwait(false);
                    _sent = safe;
                }
            }
            // Leaving the enumeration cancels the request and frees its KV blocks.
            if (stopped)
                break;
        }
    }

    private int? FindStop()
    {
        if (stop.Length == 0)
            return null;
        var text = _text.ToString();
        int best = -1;
        foreach (var s in stop)
        {
            int at = text.IndexOf(s, Math.Max(0, _sent - s.Length), StringComparison.Ordinal);
            if (at >= 0 && (best < 0 || at < best))
                best = at;
        }
        return best >= 0 ? best : null;
    }
}
