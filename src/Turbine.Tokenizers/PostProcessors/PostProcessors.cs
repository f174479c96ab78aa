namespace Turbine.Tokenizers.PostProcessors;

/// <summary>Adds special tokens around encoded sequences when the caller asks for them.</summary>
internal interface IPostProcessor
{
    /// <summary>Writes the final ids for <paramref name="first"/> (and <paramref name="second"/> for a pair) with special tokens.</summary>
    void AddSpecialTokens(List<int> first, List<int>? second, List<int> output);
}

/// <summary>One item of a template: a special token's ids, or sequence A/B.</summary>
internal readonly record struct TemplatePiece(int[]? SpecialIds, bool IsSecondSequence);

/// <summary>TemplateProcessing: e.g. single "&lt;s&gt; $A", pair "&lt;s&gt; $A &lt;s&gt; $B".</summary>
internal sealed class TemplateProcessor(TemplatePiece[] single, TemplatePiece[] pair) : IPostProcessor
{
    public void AddSpecialTokens(List<int> first, List<int>? second, List<int> output)
    {
        foreach (var piece in second is null ? single : pair)
        {
            if (piece.SpecialIds is not null) output.AddRange(piece.SpecialIds);
            else if (piece.IsSecondSequence) output.AddRange(second!);
            else output.AddRange(first);
        }
    }
}

/// <summary>A processor that adds nothing to the ids (ByteLevel: it only adjusts offsets, which Turbine does not track).</summary>
internal sealed class PassThroughProcessor : IPostProcessor
{
    public void AddSpecialTokens(List<int> first, List<int>? second, List<int> output)
    {
        output.AddRange(first);
        if (second is not null) output.AddRange(second);
    }
}

/// <summary>Applies processors in order, each to the previous one's output.</summary>
internal sealed class SequenceProcessor(IPostProcessor[] processors) : IPostProcessor
{
    public void AddSpecialTokens(List<int> first, List<int>? second, List<int> output)
    {
        var current = first;
        var currentSecond = second;
        for (var i = 0; i < processors.Length; i++)
        {
            var target = i == processors.Length - 1 ? output : [];
            processors[i].AddSpecialTokens(current, currentSecond, target);
            current = target;
            currentSecond = null;
        }
        if (processors.Length == 0) new PassThroughProcessor().AddSpecialTokens(first, second, output);
    }
}
