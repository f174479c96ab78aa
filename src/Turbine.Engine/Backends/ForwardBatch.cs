using Turbine.Core.Models;

namespace Turbine.Engine.Backends;

/// <summary>
/// One forward step described on the host: the tokens of several sequences packed back to back (no padding),
/// each token's position, KV slot and rotary cos/sin row, each sequence's block table, and which rows want logits.
/// Sized once for the step limits and refilled every step, so the loop allocates nothing.
/// </summary>
public sealed class ForwardBatch
{
    /// <summary>
    /// Buffers for up to <paramref name="maxTokens"/> tokens of up to <paramref name="maxSequences"/> sequences,
    /// of which at most <paramref name="maxLogitRows"/> rows want logits, for a model that rotates
    /// <paramref name="rotaryHalfDim"/> pairs of each head in <paramref name="rotaryStyle"/>.
    /// </summary>
    public ForwardBatch(int maxTokens, int maxSequences, int maxLogitRows, int rotaryHalfDim, RotaryStyle rotaryStyle = RotaryStyle.Neox)
    {
        MaxTokens = maxTokens;
        MaxSequences = maxSequences;
        RotaryHalfDim = rotaryHalfDim;
        RotaryStyle = rotaryStyle;
        Tokens = new int[maxTokens];
        FeedRows = new int[maxTokens];
        Positions = new int[maxTokens];
        Slots = new int[maxTokens];
        Cos = new float[(long)maxTokens * rotaryHalfDim];
        Sin = new float[(long)maxTokens * rotaryHalfDim];
        Sequences = new BatchSequence[maxSequences];
        LogitRows = new int[maxLogitRows];
    }

    /// <summary>Capacity in tokens.</summary>
    public int MaxTokens { get; }
    /// <summary>Capacity in sequences.</summary>
    public int MaxSequences { get; }
    /// <summary>
    /// Width of a cos or sin row: the rotated pairs of each head. Dimensions past 2 × RotaryHalfDim of a head are
    /// left unchanged (partial rotary).
    /// </summary>
    public int RotaryHalfDim { get; }
    /// <summary>
    /// Which dimensions of a head form the rotated pairs. A property of the model like <see cref="RotaryHalfDim"/>,
    /// kept here with the cos/sin rows so <see cref="IComputeBackend.Rotary"/> and the backends that fuse RoPE into
    /// another operation read it from the step.
    /// </summary>
    public RotaryStyle RotaryStyle { get; }
    /// <summary>Tokens in this step.</summary>
    public int TokenCount { get; private set; }
    /// <summary>Sequences in this step.</summary>
    public int SequenceCount { get; private set; }
    /// <summary>Rows (token indices) whose logits are wanted, in output order.</summary>
    public int LogitRowCount { get; private set; }
    /// <summary>Token ids, packed.</summary>
    public int[] Tokens { get; }

    /// <summary>
    /// Per token: the logit row of the previous step whose id, chosen on the backend by
    /// <see cref="IComputeBackend.QueueArgMax"/>, is this token (the host has not read it yet), or -1 when the token is
    /// <see cref="Tokens"/>' own. See <see cref="FeedsTokens"/>.
    /// </summary>
    public int[] FeedRows { get; }

    /// <summary>Whether any token of this step is fed from the previous step's ids (<see cref="FeedRows"/>).</summary>
    public bool FeedsTokens { get; private set; }
    /// <summary>Absolute position of each token in its sequence.</summary>
    public int[] Positions { get; }
    /// <summary>KV slot of each token: block × block size + offset.</summary>
    public int[] Slots { get; }
    /// <summary>Rotary cos rows, TokenCount × RotaryHalfDim.</summary>
    public float[] Cos { get; }
    /// <summary>Rotary sin rows, TokenCount × RotaryHalfDim.</summary>
    public float[] Sin { get; }
    /// <summary>The sequences, SequenceCount of them.</summary>
    public BatchSequence[] Sequences { get; }
    /// <summary>Token indices whose logits are wanted.</summary>
    public int[] LogitRows { get; }

    /// <summary>Empties the batch for the next step.</summary>
    public void Clear()
    {
        TokenCount = 0;
        SequenceCount = 0;
        LogitRowCount = 0;
        FeedsTokens = false;
    }

    /// <summary>Tokens still free in this step.</summary>
    public int FreeTokens => MaxTokens - TokenCount;

    /// <summary>
    /// Adds <paramref name="tokens"/> of a sequence that already has <paramref name="cachedLength"/> tokens in its KV
    /// blocks <paramref name="blockTable"/> (which must already cover the new ones). Logits are produced for the last
    /// token, or for every token when <paramref name="allLogits"/>. Returns the sequence's index in the batch.
    /// </summary>
    public int Add(ReadOnlySpan<int> tokens, int cachedLength, int[] blockTable, int blockSize, bool wantLogits = true, bool allLogits = false)
    {
        if (tokens.Length == 0)
            throw new ArgumentException("a sequence needs at least one token in a step", nameof(tokens));
        int logitRows = allLogits ? tokens.Length : wantLogits ? 1 : 0;
        if (tokens.Length > FreeTokens || SequenceCount == MaxSequences || LogitRowCount + logitRows > LogitRows.Length)
            throw new InvalidOperationException(
                $"step is full ({TokenCount}/{MaxTokens} tokens, {SequenceCount}/{MaxSequences} sequences, {LogitRowCount}/{LogitRows.Length} logit rows)");
        int start = TokenCount;
        for (int i = 0; i < tokens.Length; i++)
        {
            int pos = cachedLength + i;
            Tokens[start + i] = tokens[i];
            FeedRows[start + i] = -1;
            Positions[start + i] = pos;
            Slots[start + i] = blockTable[pos / blockSize] * blockSize + pos % blockSize;
        }
        TokenCount += tokens.Length;
        if (allLogits)
            for (int i = 0; i < tokens.Length; i++)
                LogitRows[LogitRowCount++] = start + i;
        else if (wantLogits)
            LogitRows[LogitRowCount++] = start + tokens.Length - 1;
        int context = cachedLength + tokens.Length;
        Sequences[SequenceCount] = new BatchSequence(start, tokens.Length, context, blockTable, (context + blockSize - 1) / blockSize);
        return SequenceCount++;
    }

    // The token AddFed stores for a fed token, whose id the backend takes from FeedRows instead.
    private static readonly int[] Placeholder = [0];

    /// <summary>
    /// Adds one token of a sequence with <paramref name="cachedLength"/> tokens in its KV blocks: the one the backend
    /// chose for logit row <paramref name="feedRow"/> of the previous step, which the host has not read yet. Its logits
    /// are produced. Returns the sequence's index in the batch.
    /// </summary>
    public int AddFed(int feedRow, int cachedLength, int[] blockTable, int blockSize)
    {
        int sequence = Add(Placeholder, cachedLength, blockTable, blockSize);
        FeedRows[TokenCount - 1] = feedRow;
        FeedsTokens = true;
        return sequence;
    }
}

/// <summary>A sequence's part of a step: its token range, its context length after the step, its KV blocks (the first BlockCount in use).</summary>
public readonly record struct BatchSequence(int QueryStart, int QueryLength, int ContextLength, int[] BlockTable, int BlockCount);
