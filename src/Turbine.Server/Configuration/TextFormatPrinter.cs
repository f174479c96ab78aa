using System.Collections;
using System.Globalization;
using System.Text;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace Turbine.Server.Configuration;

/// <summary>
/// Writes any message as protobuf text format in the layout Triton's own config.pbtxt files use (lists of messages
/// in brackets, repeated scalars as <c>[ a, b ]</c>, one map entry block per key), so generated repositories read
/// like the templates users know. Fields at their proto3 default are left out.
/// </summary>
public static class TextFormatPrinter
{
    /// <summary>Returns <paramref name="message"/> as text format that <see cref="TextFormatParser"/> reads back equal.</summary>
    public static string Print(IMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var text = new StringBuilder();
        WriteFields(text, message, indent: 0);
        return text.ToString();
    }

    private static void WriteFields(StringBuilder text, IMessage message, int indent)
    {
        string pad = new(' ', indent);
        foreach (var field in message.Descriptor.Fields.InDeclarationOrder())
        {
            object value = field.Accessor.GetValue(message);
            if (field.IsMap)
            {
                var entryType = field.MessageType;
                foreach (DictionaryEntry entry in (IDictionary)value)
                {
                    text.Append(pad).Append(field.Name).Append(" {\n");
                    WriteSingular(text, entryType.FindFieldByNumber(1), entry.Key, indent + 2);
                    WriteSingular(text, entryType.FindFieldByNumber(2), entry.Value!, indent + 2);
                    text.Append(pad).Append("}\n");
                }
            }
            else if (field.IsRepeated)
            {
                var list = (IList)value;
                if (list.Count == 0) continue;
                if (field.FieldType == FieldType.Message)
                {
                    text.Append(pad).Append(field.Name).Append(" [\n");
                    for (int i = 0; i < list.Count; i++)
                    {
                        text.Append(pad).Append("  {\n");
                        WriteFields(text, (IMessage)list[i]!, indent + 4);
                        text.Append(pad).Append(i + 1 < list.Count ? "  },\n" : "  }\n");
                    }
                    text.Append(pad).Append("]\n");
                }
                else
                {
                    text.Append(pad).Append(field.Name).Append(": [ ");
                    for (int i = 0; i < list.Count; i++)
                    {
                        if (i > 0) text.Append(", ");
                        text.Append(FormatScalar(field, list[i]!));
                    }
                    text.Append(" ]\n");
                }
            }
            else if (IsPresent(message, field, value))
            {
                WriteSingular(text, field, value, indent);
            }
        }
    }

    private static bool IsPresent(IMessage message, FieldDescriptor field, object? value)
    {
        if (field.RealContainingOneof is { } oneof) return oneof.Accessor.GetCaseFieldDescriptor(message) == field;
        return value switch
        {
            null => false,
            IMessage => true,
            string s => s.Length > 0,
            ByteString b => !b.IsEmpty,
            bool b => b,
            Enum e => Convert.ToInt32(e, CultureInfo.InvariantCulture) != 0,
            float f => f != 0 || float.IsNegative(f),
            double d => d != 0 || double.IsNegative(d),
            _ => Convert.ToDecimal(value, CultureInfo.InvariantCulture) != 0,
        };
    }

    private static void WriteSingular(StringBuilder text, FieldDescriptor field, object value, int indent)
    {
        string pad = new(' ', indent);
        if (field.FieldType == FieldType.Message)
        {
            text.Append(pad).Append(field.Name).Append(" {\n");
            WriteFields(text, (IMessage)value, indent + 2);
            text.Append(pad).Append("}\n");
            return;
        }
        text.Append(pad).Append(field.Name).Append(": ").Append(FormatScalar(field, value)).Append('\n');
    }

    private static string FormatScalar(FieldDescriptor field, object value) => value switch
    {
        string s => Quote(Encoding.UTF8.GetBytes(s), keepUtf8: true),
        ByteString b => Quote(b.ToByteArray(), keepUtf8: false),
        bool b => b ? "true" : "false",
        Enum e => field.EnumType.FindValueByNumber(Convert.ToInt32(e, CultureInfo.InvariantCulture))?.Name
            ?? Convert.ToInt32(e, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture),
        float f => FormatFloatingPoint(f, f.ToString("R", CultureInfo.InvariantCulture)),
        double d => FormatFloatingPoint(d, d.ToString("R", CultureInfo.InvariantCulture)),
        IFormattable n => n.ToString(null, CultureInfo.InvariantCulture),
        _ => throw new InvalidOperationException($"cannot print {value.GetType()} for field '{field.Name}'"),
    };

    private static string FormatFloatingPoint(double value, string roundTrip) =>
        double.IsNaN(value) ? "nan" : double.IsPositiveInfinity(value) ? "inf" : double.IsNegativeInfinity(value) ? "-inf" : roundTrip;

    /// <summary>
    /// Quotes bytes with C-style escapes. Strings keep their UTF-8 text readable (paths with Chinese names stay
    /// legible); bytes fields escape everything outside printable ASCII.
    /// </summary>
    private static string Quote(byte[] bytes, bool keepUtf8)
    {
        var text = new StringBuilder(bytes.Length + 2).Append('"');
        int start = 0;
        for (int i = 0; i < bytes.Length; i++)
        {
            byte b = bytes[i];
            string? escape = b switch
            {
                (byte)'"' => "\\\"",
                (byte)'\\' => "\\\\",
                (byte)'\n' => "\\n",
                (byte)'\r' => "\\r",
                (byte)'\t' => "\\t",
                < 0x20 or 0x7F => "\\" + Convert.ToString(b, 8).PadLeft(3, '0'),
                >= 0x80 when !keepUtf8 => "\\" + Convert.ToString(b, 8).PadLeft(3, '0'),
                _ => null,
            };
            if (escape is null) continue;
            text.Append(Encoding.UTF8.GetString(bytes, start, i - start)).Append(escape);
            start = i + 1;
        }
        return text.Append(Encoding.UTF8.GetString(bytes, start, bytes.Length - start)).Append('"').ToString();
    }
}
