using System.Collections;
using System.Globalization;
using Google.Protobuf;
using Google.Protobuf.Reflection;

namespace Turbine.Server.Configuration;

/// <summary>
/// Reads protobuf text format (what config.pbtxt files are written in) into any generated message, driven by its
/// descriptor. Google.Protobuf for C# has no text-format reader, so this mirrors what C++ TextFormat accepts:
/// optional <c>:</c> before messages, <c>{}</c> or <c>&lt;&gt;</c> message delimiters, <c>[a, b]</c> lists for
/// repeated fields, map entries as <c>{ key: .. value: .. }</c>, enum values by name or number, and <c>,</c> or
/// <c>;</c> after any field. Unknown field names are errors, as they are in Triton.
/// </summary>
public static class TextFormatParser
{
    /// <summary>Parses <paramref name="text"/> as a <typeparamref name="T"/>.</summary>
    /// <param name="text">The text-format document.</param>
    /// <param name="file">The name errors report the document under, usually its path.</param>
    /// <exception cref="TextFormatException">The text is malformed or does not fit the message's schema.</exception>
    public static T Parse<T>(string text, string file = "<text>") where T : IMessage<T>, new()
    {
        var message = new T();
        Merge(message, text, file);
        return message;
    }

    /// <summary>Parses <paramref name="text"/> into the fields of an existing message.</summary>
    /// <exception cref="TextFormatException">The text is malformed or does not fit the message's schema.</exception>
    public static void Merge(IMessage message, string text, string file = "<text>")
    {
        ArgumentNullException.ThrowIfNull(message);
        ArgumentNullException.ThrowIfNull(text);
        var tokens = new TextFormatTokenizer(text, file);
        new Reader(tokens).ReadFields(message, closing: null);
    }

    private sealed class Reader(TextFormatTokenizer tokens)
    {
        public void ReadFields(IMessage message, char? closing)
        {
            var descriptor = message.Descriptor;
            var assigned = new HashSet<int>();
            while (true)
            {
                var token = tokens.Current;
                if (closing is null ? token.Kind == TextTokenKind.End : token.IsSymbol(closing.Value))
                {
                    tokens.Next();
                    return;
                }
                if (token.Kind == TextTokenKind.End)
                    throw tokens.Error(token, $"expected '{closing}' to close {descriptor.FullName}, got end of file");
                if (token.Kind != TextTokenKind.Identifier)
                    throw tokens.Error(token, $"expected a field name of {descriptor.FullName}, got {token.Describe()}");
                tokens.Next();
                var field = descriptor.FindFieldByName(token.Text)
                    ?? throw tokens.Error(token, $"unknown field '{token.Text}' in {descriptor.FullName}; expected one of: {FieldNames(descriptor)}");
                ReadField(message, field, token, assigned);
                if (tokens.Current.IsSymbol(',') || tokens.Current.IsSymbol(';')) tokens.Next();
            }
        }

        private void ReadField(IMessage message, FieldDescriptor field, TextToken name, HashSet<int> assigned)
        {
            bool isMessage = field.FieldType is FieldType.Message or FieldType.Group;
            if (tokens.Current.IsSymbol(':'))
            {
                tokens.Next();
            }
            else if (!isMessage)
            {
                throw tokens.Error(tokens.Current, $"expected ':' after field '{field.Name}', got {tokens.Current.Describe()}");
            }

            if (!tokens.Current.IsSymbol('['))
            {
                ReadOneValue(message, field, name, assigned);
                return;
            }
            var open = tokens.Next();
            if (!field.IsRepeated)
                throw tokens.Error(open, $"field '{field.Name}' is not repeated, so it cannot take a [list]");
            if (tokens.Current.IsSymbol(']'))
            {
                tokens.Next();
                return;
            }
            while (true)
            {
                ReadOneValue(message, field, name, assigned);
                var separator = tokens.Next();
                if (separator.IsSymbol(']')) return;
                if (!separator.IsSymbol(','))
                    throw tokens.Error(separator, $"expected ',' or ']' in the list of '{field.Name}', got {separator.Describe()}");
            }
        }

        private void ReadOneValue(IMessage message, FieldDescriptor field, TextToken name, HashSet<int> assigned)
        {
            if (field.IsMap)
            {
                var (key, value) = ReadMapEntry(field);
                ((IDictionary)field.Accessor.GetValue(message))[key] = value;
                return;
            }
            object parsed = field.FieldType is FieldType.Message or FieldType.Group ? ReadMessage(field) : ReadScalar(field);
            if (field.IsRepeated)
            {
                ((IList)field.Accessor.GetValue(message)).Add(parsed);
                return;
            }
            if (!assigned.Add(field.FieldNumber))
                throw tokens.Error(name, $"field '{field.Name}' is specified more than once");
            var oneof = field.RealContainingOneof;
            if (oneof is not null)
            {
                var other = oneof.Accessor.GetCaseFieldDescriptor(message);
                if (other is not null && other != field)
                    throw tokens.Error(name, $"field '{field.Name}' and field '{other.Name}' are both set, but only one member of oneof '{oneof.Name}' may be");
            }
            field.Accessor.SetValue(message, parsed);
        }

        private IMessage ReadMessage(FieldDescriptor field)
        {
            var open = tokens.Next();
            char closing = open.IsSymbol('{') ? '}' : open.IsSymbol('<') ? '>'
                : throw tokens.Error(open, $"expected '{{' to start message field '{field.Name}', got {open.Describe()}");
            var nested = (IMessage)Activator.CreateInstance(field.MessageType.ClrType)!;
            ReadFields(nested, closing);
            return nested;
        }

        private (object Key, object Value) ReadMapEntry(FieldDescriptor mapField)
        {
            var entry = mapField.MessageType;
            var keyField = entry.FindFieldByNumber(1);
            var valueField = entry.FindFieldByNumber(2);
            var open = tokens.Next();
            char closing = open.IsSymbol('{') ? '}' : open.IsSymbol('<') ? '>'
                : throw tokens.Error(open, $"expected '{{' to start an entry of map '{mapField.Name}', got {open.Describe()}");
            object? key = null, value = null;
            while (!tokens.Current.IsSymbol(closing))
            {
                var name = tokens.Next();
                if (name.Kind == TextTokenKind.End)
                    throw tokens.Error(name, $"expected '{closing}' to close an entry of map '{mapField.Name}', got end of file");
                bool isKey = name.Kind == TextTokenKind.Identifier && name.Text == "key";
                bool isValue = name.Kind == TextTokenKind.Identifier && name.Text == "value";
                if (!isKey && !isValue)
                    throw tokens.Error(name, $"unknown field {name.Describe()} in an entry of map '{mapField.Name}'; expected one of: key, value");
                if ((isKey ? key : value) is not null)
                    throw tokens.Error(name, $"'{name.Text}' is specified more than once in an entry of map '{mapField.Name}'");
                var target = isKey ? keyField : valueField;
                bool isMessage = target.FieldType is FieldType.Message or FieldType.Group;
                if (tokens.Current.IsSymbol(':')) tokens.Next();
                else if (!isMessage)
                    throw tokens.Error(tokens.Current, $"expected ':' after '{name.Text}' in map '{mapField.Name}', got {tokens.Current.Describe()}");
                object parsed = isMessage ? ReadMessage(target) : ReadScalar(target, $"{mapField.Name}.{name.Text}");
                if (isKey) key = parsed;
                else value = parsed;
                if (tokens.Current.IsSymbol(',') || tokens.Current.IsSymbol(';')) tokens.Next();
            }
            tokens.Next();
            key ??= DefaultScalar(keyField);
            value ??= valueField.FieldType == FieldType.Message
                ? (IMessage)Activator.CreateInstance(valueField.MessageType.ClrType)!
                : DefaultScalar(valueField);
            return (key, value);
        }

        private static object DefaultScalar(FieldDescriptor field) => field.FieldType switch
        {
            FieldType.String => "",
            FieldType.Bytes => ByteString.Empty,
            FieldType.Bool => false,
            FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32 => 0,
            FieldType.UInt32 or FieldType.Fixed32 => 0u,
            FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 => 0L,
            FieldType.UInt64 or FieldType.Fixed64 => 0UL,
            FieldType.Float => 0f,
            FieldType.Double => 0d,
            FieldType.Enum => Enum.ToObject(field.EnumType.ClrType, 0),
            _ => throw new InvalidOperationException($"no default for {field.FieldType}"),
        };

        private object ReadScalar(FieldDescriptor field, string? displayName = null)
        {
            string name = displayName ?? field.Name;
            var token = tokens.Current;
            if (token.Kind == TextTokenKind.Placeholder)
                throw tokens.Error(token, $"unfilled template placeholder {token.Text} for field '{name}'; replace it with a value (fill_template.py, or generate the repository with 'turbine repo init')");
            switch (field.FieldType)
            {
                case FieldType.String:
                case FieldType.Bytes:
                    tokens.Next();
                    if (token.Kind != TextTokenKind.String)
                        throw tokens.Error(token, $"expected a quoted string for field '{name}', got {token.Describe()}");
                    return field.FieldType == FieldType.String ? token.Text : ByteString.CopyFrom(token.StringBytes!);
                case FieldType.Bool:
                    tokens.Next();
                    return token.Text switch
                    {
                        "true" or "True" or "t" or "1" when token.Kind is TextTokenKind.Identifier or TextTokenKind.Integer => true,
                        "false" or "False" or "f" or "0" when token.Kind is TextTokenKind.Identifier or TextTokenKind.Integer => false,
                        _ => throw tokens.Error(token, $"expected true or false for bool field '{name}', got {token.Describe()}"),
                    };
                case FieldType.Enum:
                    return ReadEnum(field, name);
                case FieldType.Float:
                    return (float)ReadFloatingPoint(name, "float");
                case FieldType.Double:
                    return ReadFloatingPoint(name, "double");
                default:
                    return ReadInteger(field, name);
            }
        }

        private object ReadEnum(FieldDescriptor field, string name)
        {
            var enumType = field.EnumType;
            bool negative = tokens.Current.IsSymbol('-');
            if (negative) tokens.Next();
            var token = tokens.Next();
            EnumValueDescriptor? value = null;
            if (token.Kind == TextTokenKind.Identifier && !negative)
            {
                value = enumType.FindValueByName(token.Text);
            }
            else if (token.Kind == TextTokenKind.Integer && TryParseMagnitude(token.Text, out ulong magnitude) && magnitude <= int.MaxValue)
            {
                value = enumType.FindValueByNumber(negative ? -(int)magnitude : (int)magnitude);
            }
            if (value is null)
            {
                string allowed = string.Join(", ", enumType.Values.Select(v => v.Name));
                string got = negative ? $"'-{token.Text}'" : token.Describe();
                throw tokens.Error(token, $"invalid value {got} for enum {enumType.FullName} field '{name}'; allowed: {allowed}");
            }
            return Enum.ToObject(enumType.ClrType, value.Number);
        }

        private double ReadFloatingPoint(string name, string typeName)
        {
            bool negative = tokens.Current.IsSymbol('-');
            if (negative) tokens.Next();
            var token = tokens.Next();
            double magnitude;
            if (token.Kind == TextTokenKind.Identifier)
            {
                magnitude = token.Text.ToLowerInvariant() switch
                {
                    "inf" or "infinity" => double.PositiveInfinity,
                    "nan" => double.NaN,
                    _ => throw tokens.Error(token, $"expected a number for {typeName} field '{name}', got {token.Describe()}"),
                };
            }
            else if (token.Kind == TextTokenKind.Integer && TryParseMagnitude(token.Text, out ulong integer))
            {
                magnitude = integer;
            }
            else if (token.Kind == TextTokenKind.Float
                && double.TryParse(token.Text.TrimEnd('f', 'F'), NumberStyles.Float, CultureInfo.InvariantCulture, out double parsed))
            {
                magnitude = parsed;
            }
            else
            {
                throw tokens.Error(token, $"expected a number for {typeName} field '{name}', got {(negative ? "'-" + token.Text + "'" : token.Describe())}");
            }
            return negative ? -magnitude : magnitude;
        }

        private object ReadInteger(FieldDescriptor field, string name)
        {
            bool negative = tokens.Current.IsSymbol('-');
            if (negative) tokens.Next();
            var token = tokens.Next();
            string typeName = field.FieldType.ToString().ToLowerInvariant();
            string got = negative ? $"'-{token.Text}'" : token.Describe();
            if (token.Kind != TextTokenKind.Integer || !TryParseMagnitude(token.Text, out ulong magnitude))
                throw tokens.Error(token, $"expected an integer for {typeName} field '{name}', got {got}");
            (decimal min, decimal max) = field.FieldType switch
            {
                FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32 => ((decimal)int.MinValue, (decimal)int.MaxValue),
                FieldType.UInt32 or FieldType.Fixed32 => (0m, (decimal)uint.MaxValue),
                FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 => ((decimal)long.MinValue, (decimal)long.MaxValue),
                _ => (0m, (decimal)ulong.MaxValue),
            };
            decimal value = negative ? -(decimal)magnitude : magnitude;
            if (value < min || value > max)
                throw tokens.Error(token, $"value {value} is out of range for {typeName} field '{name}' ({min} to {max})");
            return field.FieldType switch
            {
                FieldType.Int32 or FieldType.SInt32 or FieldType.SFixed32 => (object)(int)value,
                FieldType.UInt32 or FieldType.Fixed32 => (uint)value,
                FieldType.Int64 or FieldType.SInt64 or FieldType.SFixed64 => (long)value,
                _ => (ulong)value,
            };
        }

        /// <summary>Decimal, 0x-hex or 0-prefixed octal, as C++ protobuf reads integers.</summary>
        private static bool TryParseMagnitude(string text, out ulong value)
        {
            value = 0;
            if (text.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
                return text.Length > 2 && ulong.TryParse(text.AsSpan(2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out value);
            if (text.Length > 1 && text[0] == '0')
            {
                foreach (char c in text.AsSpan(1))
                {
                    if (c is < '0' or > '7') return false;
                    if (value > ulong.MaxValue / 8) return false;
                    value = value * 8 + (ulong)(c - '0');
                }
                return true;
            }
            return ulong.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out value);
        }

        private static string FieldNames(MessageDescriptor descriptor) =>
            string.Join(", ", descriptor.Fields.InDeclarationOrder().Select(f => f.Name));
    }
}
