using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace Turbine.Tokenizers.Normalizers;

/// <summary>Unicode normalization forms from embedded tables (see generate_unicode_data.py).</summary>
/// <remarks>string.Normalize does nothing under InvariantGlobalization, which Turbine runs with.</remarks>
internal static class UnicodeNormalization
{
    private const int HangulSBase = 0xAC00, HangulLBase = 0x1100, HangulVBase = 0x1161, HangulTBase = 0x11A7;
    private const int HangulLCount = 19, HangulVCount = 21, HangulTCount = 28, HangulNCount = HangulVCount * HangulTCount;
    private const int HangulSCount = HangulLCount * HangulNCount;

    private static readonly Dictionary<int, byte> CombiningClasses = [];
    private static readonly Dictionary<int, int[]> CanonicalDecompositions = [];
    private static readonly Dictionary<int, int[]> CompatibilityDecompositions = [];
    private static readonly Dictionary<long, int> Compositions = [];

    // BMP chars that can change under NFC (marks, decomposable non-composites, second halves of compositions):
    // text without any of them is already NFC, which is the common case and skips all work.
    private static readonly bool[] NfcUnsafeBmp = new bool[0x10000];
    private static readonly bool[] NfdUnsafeBmp = new bool[0x10000];
    private static readonly bool[] NfkdUnsafeBmp = new bool[0x10000];

    static UnicodeNormalization()
    {
        using var stream = typeof(UnicodeNormalization).Assembly.GetManifestResourceStream("Turbine.Tokenizers.UnicodeNormalization.bin")
            ?? throw new InvalidOperationException("embedded resource UnicodeNormalization.bin is missing");
        var data = new byte[stream.Length];
        stream.ReadExactly(data);
        var pos = 0;
        int ReadInt()
        {
            var v = BinaryPrimitives.ReadInt32LittleEndian(data.AsSpan(pos));
            pos += 4;
            return v;
        }
        var versionLength = ReadInt();
        pos += versionLength;
        for (int i = 0, n = ReadInt(); i < n; i++)
        {
            var cp = ReadInt();
            CombiningClasses[cp] = data[pos++];
        }
        foreach (var table in new[] { CanonicalDecompositions, CompatibilityDecompositions })
        {
            for (int i = 0, n = ReadInt(); i < n; i++)
            {
                var cp = ReadInt();
                var mapping = new int[data[pos++]];
                for (var k = 0; k < mapping.Length; k++) mapping[k] = ReadInt();
                table[cp] = mapping;
            }
        }
        var composites = new HashSet<int>();
        for (int i = 0, n = ReadInt(); i < n; i++)
        {
            int first = ReadInt(), second = ReadInt(), composite = ReadInt();
            Compositions[PairKey(first, second)] = composite;
            composites.Add(composite);
            if (second < 0x10000) NfcUnsafeBmp[second] = true;
        }
        foreach (var cp in CombiningClasses.Keys)
        {
            if (cp >= 0x10000) continue;
            NfcUnsafeBmp[cp] = NfdUnsafeBmp[cp] = NfkdUnsafeBmp[cp] = true;
        }
        foreach (var cp in CanonicalDecompositions.Keys)
        {
            if (cp >= 0x10000) continue;
            NfdUnsafeBmp[cp] = true;
            if (!composites.Contains(cp)) NfcUnsafeBmp[cp] = true;
        }
        foreach (var cp in CompatibilityDecompositions.Keys)
            if (cp < 0x10000) NfkdUnsafeBmp[cp] = true;
        for (var cp = HangulSBase; cp < HangulSBase + HangulSCount; cp++) NfdUnsafeBmp[cp] = NfkdUnsafeBmp[cp] = true;
        for (var cp = HangulVBase; cp < HangulVBase + HangulVCount; cp++) NfcUnsafeBmp[cp] = true;
        for (var cp = HangulTBase + 1; cp < HangulTBase + HangulTCount; cp++) NfcUnsafeBmp[cp] = true;
        for (var cp = 0xD800; cp <= 0xDFFF; cp++) NfcUnsafeBmp[cp] = NfdUnsafeBmp[cp] = NfkdUnsafeBmp[cp] = true;
    }

    private static long PairKey(int first, int second) => ((long)first << 32) | (uint)second;

    private static int CombiningClass(int cp) => cp < 0x300 ? 0 : CombiningClasses.GetValueOrDefault(cp);

    /// <summary>Normalizes <paramref name="text"/> to <paramref name="form"/>; returns the input itself when already normalized.</summary>
    public static string Normalize(string text, NormalizationForm form)
    {
        var compat = form is NormalizationForm.FormKC or NormalizationForm.FormKD;
        var compose = form is NormalizationForm.FormC or NormalizationForm.FormKC;
        var unsafeTable = compat ? NfkdUnsafeBmp : compose ? NfcUnsafeBmp : NfdUnsafeBmp;
        var quick = true;
        foreach (var c in text)
        {
            if (unsafeTable[c])
            {
                quick = false;
                break;
            }
        }
        if (quick) return text;

        var buffer = ArrayPool<int>.Shared.Rent(text.Length * 4 + 16);
        try
        {
            var length = 0;
            foreach (var rune in text.EnumerateRunes()) Decompose(rune.Value, compat, ref buffer, ref length);
            ReorderCanonically(buffer.AsSpan(0, length));
            if (compose) length = Compose(buffer.AsSpan(0, length));
            var builder = new StringBuilder(length);
            for (var i = 0; i < length; i++) builder.Append(new Rune(buffer[i]).ToString());
            return builder.ToString();
        }
        finally
        {
            ArrayPool<int>.Shared.Return(buffer);
        }
    }

    private static void Decompose(int cp, bool compat, ref int[] buffer, ref int length)
    {
        if (length + 32 > buffer.Length)
        {
            var larger = ArrayPool<int>.Shared.Rent(buffer.Length * 2);
            buffer.AsSpan(0, length).CopyTo(larger);
            ArrayPool<int>.Shared.Return(buffer);
            buffer = larger;
        }
        var sIndex = cp - HangulSBase;
        if (sIndex is >= 0 and < HangulSCount)
        {
            buffer[length++] = HangulLBase + sIndex / HangulNCount;
            buffer[length++] = HangulVBase + sIndex % HangulNCount / HangulTCount;
            var t = sIndex % HangulTCount;
            if (t != 0) buffer[length++] = HangulTBase + t;
            return;
        }
        if ((compat ? CompatibilityDecompositions : CanonicalDecompositions).TryGetValue(cp, out var mapping))
        {
            foreach (var m in mapping) buffer[length++] = m;
            return;
        }
        buffer[length++] = cp;
    }

    private static void ReorderCanonically(Span<int> cps)
    {
        // Insertion sort by combining class within runs of non-starters; stable, and runs are short.
        for (var i = 1; i < cps.Length; i++)
        {
            var ccc = CombiningClass(cps[i]);
            if (ccc == 0) continue;
            var j = i;
            while (j > 0 && CombiningClass(cps[j - 1]) > ccc)
            {
                (cps[j - 1], cps[j]) = (cps[j], cps[j - 1]);
                j--;
            }
        }
    }

    private static int Compose(Span<int> cps)
    {
        if (cps.Length == 0) return 0;
        var starterIndex = CombiningClass(cps[0]) == 0 ? 0 : -1;
        var lastClass = starterIndex == 0 ? 0 : 256;
        var write = 1;
        for (var read = 1; read < cps.Length; read++)
        {
            var cp = cps[read];
            var ccc = CombiningClass(cp);
            if (starterIndex >= 0 && (lastClass < ccc || (lastClass == 0 && write - 1 == starterIndex)))
            {
                var composed = ComposePair(cps[starterIndex], cp);
                if (composed >= 0)
                {
                    cps[starterIndex] = composed;
                    continue;
                }
            }
            if (ccc == 0)
            {
                starterIndex = write;
                lastClass = 0;
            }
            else
            {
                lastClass = ccc;
            }
            cps[write++] = cp;
        }
        return write;
    }

    private static int ComposePair(int first, int second)
    {
        var lIndex = first - HangulLBase;
        if (lIndex is >= 0 and < HangulLCount)
        {
            var vIndex = second - HangulVBase;
            if (vIndex is >= 0 and < HangulVCount) return HangulSBase + (lIndex * HangulVCount + vIndex) * HangulTCount;
        }
        var sIndex = first - HangulSBase;
        if (sIndex is >= 0 and < HangulSCount && sIndex % HangulTCount == 0)
        {
            var tIndex = second - HangulTBase;
            if (tIndex is > 0 and < HangulTCount) return first + tIndex;
        }
        return Compositions.TryGetValue(PairKey(first, second), out var composite) ? composite : -1;
    }
}
