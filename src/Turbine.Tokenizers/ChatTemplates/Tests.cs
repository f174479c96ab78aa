namespace Turbine.Tokenizers.ChatTemplates;

internal static partial class Builtins
{
    private static readonly Dictionary<string, Func<object?, List<object?>, bool>> Tests = new()
    {
        ["defined"] = (v, _) => v is not Undefined,
        ["undefined"] = (v, _) => v is Undefined,
        ["none"] = (v, _) => v is null,
        ["boolean"] = (v, _) => v is bool,
        ["true"] = (v, _) => v is true,
        ["false"] = (v, _) => v is false,
        ["integer"] = (v, _) => v is long,
        ["float"] = (v, _) => v is double,
        ["number"] = (v, _) => Py.IsNumber(v),
        ["string"] = (v, _) => v is string,
        ["mapping"] = (v, _) => v is PyDict,
        ["iterable"] = (v, _) => v is string or List<object?> or object?[] or PyDict or Undefined,
        ["sequence"] = (v, _) => v is string or List<object?> or object?[] or PyDict or Undefined,
        ["callable"] = (v, _) => v is PyFunction,
        ["sameas"] = (v, a) => SameAs(v, TestArg(a)),
        ["escaped"] = (_, _) => false,
        ["in"] = (v, a) => Py.Contains(TestArg(a), v),
        ["odd"] = (v, _) => IntegerOf(v) % 2 != 0,
        ["even"] = (v, _) => IntegerOf(v) % 2 == 0,
        ["divisibleby"] = (v, a) => IntegerOf(v) % IntegerOf(TestArg(a)) == 0,
        ["eq"] = (v, a) => Py.Equal(v, TestArg(a)),
        ["equalto"] = (v, a) => Py.Equal(v, TestArg(a)),
        ["=="] = (v, a) => Py.Equal(v, TestArg(a)),
        ["ne"] = (v, a) => !Py.Equal(v, TestArg(a)),
        ["!="] = (v, a) => !Py.Equal(v, TestArg(a)),
        ["lt"] = (v, a) => Py.Compare(v, TestArg(a)) < 0,
        ["lessthan"] = (v, a) => Py.Compare(v, TestArg(a)) < 0,
        ["<"] = (v, a) => Py.Compare(v, TestArg(a)) < 0,
        ["le"] = (v, a) => Py.Compare(v, TestArg(a)) <= 0,
        ["<="] = (v, a) => Py.Compare(v, TestArg(a)) <= 0,
        ["gt"] = (v, a) => Py.Compare(v, TestArg(a)) > 0,
        ["greaterthan"] = (v, a) => Py.Compare(v, TestArg(a)) > 0,
        [">"] = (v, a) => Py.Compare(v, TestArg(a)) > 0,
        ["ge"] = (v, a) => Py.Compare(v, TestArg(a)) >= 0,
        [">="] = (v, a) => Py.Compare(v, TestArg(a)) >= 0,
        ["lower"] = (v, _) => IsLower(Py.Str(v)),
        ["upper"] = (v, _) => IsUpper(Py.Str(v)),
        ["filter"] = (v, _) => v is string name && HasFilter(name),
        ["test"] = (v, _) => v is string name && HasTest(name),
    };

    public static bool HasTest(string name) => Tests.ContainsKey(name);

    public static bool Test(string name, object? value, List<object?> args)
    {
        if (!Tests.TryGetValue(name, out var test)) throw Error($"No test named '{name}'.");
        return test(value, args);
    }

    private static object? TestArg(List<object?> args) => args.Count > 0 ? args[0] : throw Error("the test needs an argument");

    private static long IntegerOf(object? value) => value switch
    {
        long l => l,
        bool b => b ? 1 : 0,
        double d when d == Math.Floor(d) => (long)d,
        Undefined u => throw Error(u.Hint),
        _ => throw Error($"expected an integer, got {Py.TypeName(value)}"),
    };

    // Python's "is": None, booleans and small values compare by value, containers by identity.
    private static bool SameAs(object? a, object? b) => (a, b) switch
    {
        (null, null) => true,
        (bool x, bool y) => x == y,
        (long x, long y) => x == y,
        (string x, string y) => x == y,
        _ => ReferenceEquals(a, b),
    };
}
