using System.Text;

namespace Turbine.Tokenizers.ChatTemplates;

/// <summary>Variables visible at one point of the template; for-loop iterations and macro calls get a child scope.</summary>
internal sealed class Scope(Scope? parent)
{
    private readonly Dictionary<string, object?> _vars = [];

    public bool TryGet(string name, out object? value)
    {
        for (var scope = this; scope is not null; scope = scope.Parent)
            if (scope._vars.TryGetValue(name, out value)) return true;
        value = null;
        return false;
    }

    public Scope? Parent { get; } = parent;

    public void Set(string name, object? value) => _vars[name] = value;
}

/// <summary>Executes a parsed template against a scope of variables.</summary>
internal sealed class Renderer
{
    private enum Flow { Normal, Break, Continue }

    // Macros may recurse; a runaway template must fail as a render error, not overflow the server's stack.
    private const int MaxMacroDepth = 200;

    private readonly SourceMap _map;
    private int _offset;
    private int _macroDepth;

    public Renderer(SourceMap map) => _map = map;

    private int Line => _map.Position(_offset).Line;

    public string Render(List<Stmt> body, Scope scope)
    {
        var output = new StringBuilder();
        try
        {
            Exec(body, scope, output);
        }
        catch (TemplateRuntimeException e)
        {
            throw new ChatTemplateException(ChatTemplateErrorKind.Render, e.Message, Line, inner: e);
        }
        catch (Exception e) when (e is InvalidOperationException or ArgumentException or FormatException or OverflowException or InvalidCastException)
        {
            throw new ChatTemplateException(ChatTemplateErrorKind.Render, e.Message, Line, inner: e);
        }
        return output.ToString();
    }

    private Flow Exec(List<Stmt> body, Scope scope, StringBuilder output)
    {
        foreach (var stmt in body)
        {
            _offset = stmt.Offset;
            switch (stmt)
            {
                case DataStmt data:
                    output.Append(data.Text);
                    break;
                case OutputStmt print:
                    output.Append(Py.Str(Eval(print.Value, scope)));
                    break;
                case IfStmt conditional:
                    {
                        var taken = false;
                        foreach (var (test, branch) in conditional.Branches)
                        {
                            if (!Py.Truthy(Eval(test, scope))) continue;
                            taken = true;
                            var flow = Exec(branch, scope, output);
                            if (flow != Flow.Normal) return flow;
                            break;
                        }
                        if (!taken && conditional.Else is { } otherwise)
                        {
                            var flow = Exec(otherwise, scope, output);
                            if (flow != Flow.Normal) return flow;
                        }
                        break;
                    }
                case ForStmt loop:
                    ExecFor(loop, scope, output);
                    break;
                case SetStmt set:
                    Assign(set.Target, Eval(set.Value, scope), scope);
                    break;
                case SetBlockStmt setBlock:
                    {
                        var captured = new StringBuilder();
                        Exec(setBlock.Body, new Scope(scope), captured);
                        scope.Set(setBlock.Name, ApplyFilters(setBlock.Filters, captured.ToString(), scope));
                        break;
                    }
                case MacroStmt macro:
                    scope.Set(macro.Name, MakeMacro(macro, scope));
                    break;
                case FilterBlockStmt filterBlock:
                    {
                        var captured = new StringBuilder();
                        Exec(filterBlock.Body, new Scope(scope), captured);
                        output.Append(Py.Str(ApplyFilters(filterBlock.Filters, captured.ToString(), scope)));
                        break;
                    }
                case BlockStmt block:
                    {
                        var flow = Exec(block.Body, scope, output);
                        if (flow != Flow.Normal) return flow;
                        break;
                    }
                case BreakStmt:
                    return Flow.Break;
                case ContinueStmt:
                    return Flow.Continue;
            }
        }
        return Flow.Normal;
    }

    private object? ApplyFilters(List<FilterExpr> filters, object? value, Scope scope)
    {
        foreach (var filter in filters) value = CallFilter(filter, value, scope);
        return value;
    }

    private void ExecFor(ForStmt loop, Scope scope, StringBuilder output)
    {
        var iterable = Eval(loop.Iterable, scope);
        IReadOnlyList<object?> items = Py.Iterate(iterable);
        if (loop.Filter is { } filter)
        {
            var kept = new List<object?>();
            foreach (var item in items)
            {
                var test = new Scope(scope);
                Assign(loop.Target, item, test);
                if (Py.Truthy(Eval(filter, test))) kept.Add(item);
            }
            items = kept;
        }
        if (items.Count == 0)
        {
            if (loop.Else is { } otherwise) Exec(otherwise, new Scope(scope), output);
            return;
        }
        var context = new LoopContext(items);
        for (var i = 0; i < items.Count; i++)
        {
            var inner = new Scope(scope);
            context.Index0 = i;
            inner.Set("loop", context);
            _offset = loop.Offset;
            Assign(loop.Target, items[i], inner);
            if (Exec(loop.Body, inner, output) == Flow.Break) break;
        }
    }

    private void Assign(Expr target, object? value, Scope scope)
    {
        switch (target)
        {
            case NameExpr name:
                scope.Set(name.Name, value);
                break;
            case AttrExpr { Target: NameExpr owner } attr:
                if (!scope.TryGet(owner.Name, out var ns) || ns is not Namespace space)
                    throw new TemplateRuntimeException("cannot assign attribute on non-namespace object");
                space.Attributes[attr.Name] = value;
                break;
            case TupleExpr tuple:
                {
                    var items = Py.Iterate(value);
                    if (items.Count != tuple.Items.Count)
                        throw new TemplateRuntimeException(items.Count < tuple.Items.Count
                            ? $"not enough values to unpack (expected {tuple.Items.Count}, got {items.Count})"
                            : $"too many values to unpack (expected {tuple.Items.Count})");
                    for (var i = 0; i < items.Count; i++) Assign(tuple.Items[i], items[i], scope);
                    break;
                }
            default:
                throw new TemplateRuntimeException("cannot assign to this expression");
        }
    }

    private PyFunction MakeMacro(MacroStmt macro, Scope defining) => new(macro.Name, (args, kwargs) =>
    {
        if (args.Count > macro.Parameters.Count)
            throw new TemplateRuntimeException($"macro '{macro.Name}' takes not more than {macro.Parameters.Count} argument(s)");
        var scope = new Scope(defining);
        for (var i = 0; i < macro.Parameters.Count; i++)
        {
            var (name, defaultValue) = macro.Parameters[i];
            if (i < args.Count)
            {
                if (kwargs.ContainsKey(name)) throw new TemplateRuntimeException($"macro '{macro.Name}' got multiple values for argument '{name}'");
                scope.Set(name, args[i]);
            }
            else if (kwargs.Remove(name, out var given))
            {
                scope.Set(name, given);
            }
            else
            {
                scope.Set(name, defaultValue is null ? new Undefined($"parameter '{name}' was not provided") : Eval(defaultValue, scope));
            }
        }
        if (kwargs.Count > 0) throw new TemplateRuntimeException($"macro '{macro.Name}' takes no keyword argument '{kwargs.Keys.First()}'");
        if (_macroDepth >= MaxMacroDepth) throw new TemplateRuntimeException($"macro '{macro.Name}' recursed deeper than {MaxMacroDepth} calls");
        var output = new StringBuilder();
        var caller = _offset;
        _macroDepth++;
        try
        {
            Exec(macro.Body, scope, output);
        }
        finally
        {
            _macroDepth--;
        }
        _offset = caller;
        return output.ToString();
    });

    private object? Eval(Expr expr, Scope scope)
    {
        _offset = expr.Offset;
        switch (expr)
        {
            case ConstExpr constant:
                return constant.Value;
            case NameExpr name:
                return scope.TryGet(name.Name, out var value) ? value : new Undefined($"'{name.Name}' is undefined");
            case AttrExpr attr:
                return Builtins.GetAttr(Eval(attr.Target, scope), attr.Name);
            case ItemExpr item:
                {
                    var target = Eval(item.Target, scope);
                    return Builtins.GetItem(target, Eval(item.Key, scope));
                }
            case SliceExpr slice:
                {
                    var target = Eval(slice.Target, scope);
                    var start = slice.Start is null ? null : Eval(slice.Start, scope);
                    var stop = slice.Stop is null ? null : Eval(slice.Stop, scope);
                    var step = slice.Step is null ? null : Eval(slice.Step, scope);
                    return Builtins.Slice(target, start, stop, step);
                }
            case CallExpr call:
                {
                    var callee = Eval(call.Callee, scope);
                    var (args, kwargs) = EvalArgs(call.Args, call.Kwargs, scope);
                    _offset = call.Offset;
                    return callee switch
                    {
                        PyFunction function => function.Invoke(args, kwargs),
                        Undefined undefined => throw new TemplateRuntimeException(undefined.Hint),
                        _ => throw new TemplateRuntimeException($"'{Py.TypeName(callee)}' object is not callable"),
                    };
                }
            case FilterExpr filter:
                return CallFilter(filter, Eval(filter.Value!, scope), scope);
            case TestExpr test:
                {
                    var subject = Eval(test.Value, scope);
                    var args = test.Args.Select(a => Eval(a, scope)).ToList();
                    _offset = test.Offset;
                    return Builtins.Test(test.Name, subject, args) != test.Negated;
                }
            case UnaryExpr unary:
                {
                    var operand = Eval(unary.Operand, scope);
                    return unary.Op switch
                    {
                        "not" => !Py.Truthy(operand),
                        "-" => operand switch
                        {
                            // Each arm is boxed: a switch expression over long and double would widen every result to double.
                            long l => (object)(-l),
                            double d => -d,
                            bool b => (object)(b ? -1L : 0L),
                            Undefined u => throw new TemplateRuntimeException(u.Hint),
                            _ => throw new TemplateRuntimeException($"bad operand type for unary -: '{Py.TypeName(operand)}'"),
                        },
                        _ => operand switch
                        {
                            long or double => operand,
                            bool b => (object)(b ? 1L : 0L),
                            Undefined u => throw new TemplateRuntimeException(u.Hint),
                            _ => throw new TemplateRuntimeException($"bad operand type for unary +: '{Py.TypeName(operand)}'"),
                        },
                    };
                }
            case BinaryExpr binary:
                {
                    var left = Eval(binary.Left, scope);
                    switch (binary.Op)
                    {
                        case "and": return Py.Truthy(left) ? Eval(binary.Right, scope) : left;
                        case "or": return Py.Truthy(left) ? left : Eval(binary.Right, scope);
                    }
                    var right = Eval(binary.Right, scope);
                    _offset = binary.Offset;
                    return binary.Op == "~" ? Py.Str(left) + Py.Str(right) : Py.Binary(binary.Op, left, right);
                }
            case CompareExpr compare:
                {
                    var left = Eval(compare.First, scope);
                    foreach (var (op, operandExpr) in compare.Rest)
                    {
                        var right = Eval(operandExpr, scope);
                        _offset = compare.Offset;
                        var holds = op switch
                        {
                            "==" => Py.Equal(left, right),
                            "!=" => !Py.Equal(left, right),
                            "<" => Py.Compare(left, right, op) < 0,
                            "<=" => Py.Compare(left, right, op) <= 0,
                            ">" => Py.Compare(left, right, op) > 0,
                            ">=" => Py.Compare(left, right, op) >= 0,
                            "in" => Py.Contains(right, left),
                            _ => !Py.Contains(right, left),
                        };
                        if (!holds) return false;
                        left = right;
                    }
                    return true;
                }
            case CondExpr conditional:
                if (Py.Truthy(Eval(conditional.Test, scope))) return Eval(conditional.Then, scope);
                return conditional.Else is null
                    ? new Undefined($"the inline if-expression on line {_map.Position(conditional.Offset).Line} evaluated to false and no else section was defined.")
                    : Eval(conditional.Else, scope);
            case ListExpr list:
                return list.Items.Select(i => Eval(i, scope)).ToList();
            case TupleExpr tuple:
                return tuple.Items.Select(i => Eval(i, scope)).ToArray();
            case DictExpr dict:
                {
                    var result = new PyDict(dict.Items.Count);
                    foreach (var (keyExpr, valueExpr) in dict.Items)
                    {
                        var key = Eval(keyExpr, scope) ?? throw new TemplateRuntimeException("None as a dict key is not supported");
                        result[key] = Eval(valueExpr, scope);
                    }
                    return result;
                }
            default:
                throw new TemplateRuntimeException($"cannot evaluate {expr.GetType().Name}");
        }
    }

    private (List<object?>, Dictionary<string, object?>) EvalArgs(List<Expr> args, List<(string Name, Expr Value)> kwargs, Scope scope)
    {
        var positional = args.Select(a => Eval(a, scope)).ToList();
        var named = new Dictionary<string, object?>();
        foreach (var (name, valueExpr) in kwargs) named[name] = Eval(valueExpr, scope);
        return (positional, named);
    }

    private object? CallFilter(FilterExpr filter, object? value, Scope scope)
    {
        var (args, kwargs) = EvalArgs(filter.Args, filter.Kwargs, scope);
        _offset = filter.Offset;
        return Builtins.Filter(filter.Name, value, args, kwargs);
    }
}
