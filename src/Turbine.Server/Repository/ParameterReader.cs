using System.Globalization;
using Inference;

namespace Turbine.Server.Repository;

/// <summary>
/// Typed access to a model's <c>parameters</c> map with errors that name the file, the key and the allowed values.
/// A value still holding a <c>${...}</c> template placeholder counts as not given for optional keys, which is how
/// TensorRT-LLM's backend treats the many keys fill_template.py users never fill; for a required key it is an error.
/// </summary>
internal sealed class ParameterReader
{
    private readonly ModelConfig _config;
    private readonly string _file;
    private readonly List<string> _warnings = [];

    public ParameterReader(ModelConfig config, string file)
    {
        _config = config;
        _file = file;
        foreach (var (key, parameter) in config.Parameters.OrderBy(p => p.Key, StringComparer.Ordinal))
        {
            if (IsPlaceholder(parameter.StringValue.Trim()))
                _warnings.Add($"{file}: parameters.{key} is still the template placeholder {parameter.StringValue.Trim()}; using the default");
        }
    }

    public IReadOnlyList<string> Warnings => _warnings;

    public string File => _file;

    /// <summary>The first of <paramref name="keys"/> given a real value, or null.</summary>
    public (string Key, string Value)? Find(params string[] keys)
    {
        foreach (var key in keys)
        {
            if (!_config.Parameters.TryGetValue(key, out var parameter)) continue;
            string value = parameter.StringValue.Trim();
            if (value.Length > 0 && !IsPlaceholder(value)) return (key, value);
        }
        return null;
    }

    public string Required(string what, params string[] keys)
    {
        foreach (var key in keys)
        {
            if (_config.Parameters.TryGetValue(key, out var parameter) && IsPlaceholder(parameter.StringValue.Trim()))
                throw new ModelRepositoryException(_file, $"parameters.{key}",
                    $"{what} is still the template placeholder {parameter.StringValue.Trim()}; fill it (fill_template.py {key}:VALUE, or generate the repository with 'turbine repo init')");
        }
        return Find(keys)?.Value
            ?? throw new ModelRepositoryException(_file, $"parameters.{keys[0]}", $"{what} is required but not given (set parameters {{ key: \"{keys[0]}\" value: {{ string_value: \"...\" }} }})");
    }

    public string? String(params string[] keys) => Find(keys)?.Value;

    public int? Int(string key, int minimum)
    {
        if (Find(key) is not var (_, value)) return null;
        if (!int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out int parsed) || parsed < minimum)
            throw new ModelRepositoryException(_file, $"parameters.{key}", $"'{value}' is not an integer of at least {minimum}");
        return parsed;
    }

    public long? Long(string key, long minimum)
    {
        if (Find(key) is not var (_, value)) return null;
        if (!long.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out long parsed) || parsed < minimum)
            throw new ModelRepositoryException(_file, $"parameters.{key}", $"'{value}' is not an integer of at least {minimum}");
        return parsed;
    }

    public double? Fraction(string key)
    {
        if (Find(key) is not var (_, value)) return null;
        if (!double.TryParse(value, NumberStyles.Float, CultureInfo.InvariantCulture, out double parsed) || !(parsed > 0 && parsed <= 1))
            throw new ModelRepositoryException(_file, $"parameters.{key}", $"'{value}' is not a fraction in (0, 1]");
        return parsed;
    }

    public bool? Bool(string key)
    {
        if (Find(key) is not var (_, value)) return null;
        return value.ToLowerInvariant() switch
        {
            "true" or "1" or "yes" or "on" => true,
            "false" or "0" or "no" or "off" => false,
            _ => throw new ModelRepositoryException(_file, $"parameters.{key}", $"'{value}' is not a boolean; allowed: true, false"),
        };
    }

    /// <summary>A value from a fixed set, matched case-insensitively.</summary>
    public T? Choice<T>(IReadOnlyDictionary<string, T> allowed, params string[] keys) where T : struct
    {
        if (Find(keys) is not var (key, value)) return null;
        foreach (var (name, choice) in allowed)
        {
            if (string.Equals(name, value, StringComparison.OrdinalIgnoreCase)) return choice;
        }
        throw new ModelRepositoryException(_file, $"parameters.{key}", $"'{value}' is not allowed; allowed: {string.Join(", ", allowed.Keys)}");
    }

    public static bool IsPlaceholder(string value) => value.StartsWith("${", StringComparison.Ordinal) && value.EndsWith('}');
}
