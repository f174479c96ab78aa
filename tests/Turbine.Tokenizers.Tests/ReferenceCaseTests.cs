namespace Turbine.Tokenizers.Tests;

/// <summary>Every reference case made with Python tokenizers 0.23, for the three real vocabularies.</summary>
public sealed class ReferenceCaseTests
{
    public static TheoryData<string, int> Cases => TestData.AllCases();

    [Theory]
    [MemberData(nameof(Cases))]
    public void Encode_WithoutSpecialTokens_MatchesTokenizersIds(string vocabulary, int index)
    {
        var reference = TestData.ReferenceCases(vocabulary)[index];
        var ids = TestData.Vocabulary(vocabulary).Encode(reference.Text, addSpecialTokens: false);
        Assert.True(reference.Ids.SequenceEqual(ids),
            $"{TestData.Show(reference.Text)}\nexpected [{string.Join(",", reference.Ids)}]\nactual   [{string.Join(",", ids)}]");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Encode_WithSpecialTokens_MatchesTokenizersIds(string vocabulary, int index)
    {
        var reference = TestData.ReferenceCases(vocabulary)[index];
        var ids = TestData.Vocabulary(vocabulary).Encode(reference.Text, addSpecialTokens: true);
        Assert.True(reference.IdsWithSpecial.SequenceEqual(ids),
            $"{TestData.Show(reference.Text)}\nexpected [{string.Join(",", reference.IdsWithSpecial)}]\nactual   [{string.Join(",", ids)}]");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decode_KeepingSpecialTokens_MatchesTokenizersText(string vocabulary, int index)
    {
        var reference = TestData.ReferenceCases(vocabulary)[index];
        Assert.Equal(reference.Decoded, TestData.Vocabulary(vocabulary).Decode(reference.IdsWithSpecial, skipSpecialTokens: false));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Decode_SkippingSpecialTokens_MatchesTokenizersText(string vocabulary, int index)
    {
        var reference = TestData.ReferenceCases(vocabulary)[index];
        Assert.Equal(reference.DecodedSkipSpecial, TestData.Vocabulary(vocabulary).Decode(reference.IdsWithSpecial, skipSpecialTokens: true));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void IncrementalDecoder_StreamsExactlyTheFullDecode_WithoutSpuriousReplacementChars(string vocabulary, int index)
    {
        var reference = TestData.ReferenceCases(vocabulary)[index];
        var tokenizer = TestData.Vocabulary(vocabulary);
        foreach (var skip in new[] { false, true })
        {
            var expected = tokenizer.Decode(reference.IdsWithSpecial, skip);
            var decoder = tokenizer.CreateIncrementalDecoder(skip);
            var streamed = "";
            foreach (var id in reference.IdsWithSpecial)
            {
                var delta = decoder.Push(id);
                if (!expected.Contains('\uFFFD')) Assert.DoesNotContain('\uFFFD', delta);
                streamed += delta;
                Assert.StartsWith(streamed, expected, StringComparison.Ordinal);
            }
            streamed += decoder.Flush();
            Assert.Equal(expected, streamed);
        }
    }
}
