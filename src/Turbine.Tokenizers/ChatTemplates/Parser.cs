namespace Turbine.Tokenizers.ChatTemplates;

/// <summary>Recursive-descent parser following jinja2's grammar and operator precedence.</summary>
internal sealed class Parser
{
    private static readonly HashSet<string> CompareOps = ["==", "!=", "<", ">", "<=", ">="];

    private readonly List<Token> _tokens;
    private readonly SourceMap _map;
    private readonly List<(string Tag, List<string> EndTags)> _open = [];
    private int _index;
    private int _loopDepth;

    private Parser(List<Token> tokens, SourceMap map)
    {
        _tokens = tokens;
        _map = map;
    }

    public static List<Stmt> Parse(List<Token> tokens, SourceMap map)
    {
        var parser = new Parser(tokens, map);
        var body = parser.Subparse([]);
        return body;
    }

    private Token Current => _tokens[_index];

    private Token Peek(int ahead = 1) => _tokens[Math.Min(_index + ahead, _tokens.Count - 1)];

    private Token Next() => _tokens[_index++];

    private ChatTemplateException Error(string message, int offset)
    {
        var (line, column) = _map.Position(offset);
        return new ChatTemplateException(ChatTemplateErrorKind.Syntax, message, line, column);
    }

    private ChatTemplateException Unexpected(Token token) => Error($"unexpected {token.Describe()}", token.Offset);

    private void Expect(TokenType type, string description)
    {
        if (Current.Type != type) throw Error($"expected {description}, got {Current.Describe()}", Current.Offset);
        _index++;
    }

    private void ExpectOperator(string op)
    {
        if (!Current.IsOperator(op)) throw Error($"expected '{op}', got {Current.Describe()}", Current.Offset);
        _index++;
    }

    private void ExpectName(string name)
    {
        if (!Current.IsName(name)) throw Error($"expected '{name}', got {Current.Describe()}", Current.Offset);
        _index++;
    }

    private string ExpectIdentifier()
    {
        if (Current.Type != TokenType.Name) throw Error($"expected a name, got {Current.Describe()}", Current.Offset);
        return Next().Text;
    }

    private bool SkipOperator(string op)
    {
        if (!Current.IsOperator(op)) return false;
        _index++;
        return true;
    }

    private bool SkipName(string name)
    {
        if (!Current.IsName(name)) return false;
        _index++;
        return true;
    }

    // Parses until a {% tag %} named in endTags; leaves the stream at that tag's name.
    private List<Stmt> Subparse(List<string> endTags)
    {
        var body = new List<Stmt>();
        while (true)
        {
            var token = Current;
            switch (token.Type)
            {
                case TokenType.Data:
                    body.Add(new DataStmt((string)token.Value!, token.Offset));
                    _index++;
                    break;
                case TokenType.VariableBegin:
                    _index++;
                    var value = ParseTuple(withCondExpr: true, IsStatementEnd);
                    body.Add(new OutputStmt(value, token.Offset));
                    Expect(TokenType.VariableEnd, "end of print statement");
                    break;
                case TokenType.BlockBegin:
                    _index++;
                    if (Current.Type == TokenType.Name && endTags.Contains(Current.Text)) return body;
                    body.Add(ParseStatement());
                    break;
                case TokenType.Eof:
                    if (endTags.Count == 0) return body;
                    throw Error($"unexpected end of template; Jinja was looking for the following tags: {Quote(endTags)}. The innermost block that needs to be closed is '{_open[^1].Tag}'", token.Offset);
                default:
                    throw Unexpected(token);
            }
        }
    }

    private static string Quote(List<string> tags) => string.Join(" or ", tags.Select(t => $"'{t}'"));

    private List<Stmt> Block(string tag, List<string> endTags)
    {
        _open.Add((tag, endTags));
        var body = Subparse(endTags);
        _open.RemoveAt(_open.Count - 1);
        return body;
    }

    private void EndBlock(string name)
    {
        ExpectName(name);
        Expect(TokenType.BlockEnd, "end of statement block");
    }

    private Stmt ParseStatement()
    {
        var token = Current;
        if (token.Type != TokenType.Name) throw Error($"tag name expected, got {token.Describe()}", token.Offset);
        switch (token.Text)
        {
            case "if": return ParseIf();
            case "for": return ParseFor();
            case "set": return ParseSet();
            case "macro": return ParseMacro();
            case "filter": return ParseFilterBlock();
            case "generation":
                {
                    _index++;
                    Expect(TokenType.BlockEnd, "end of statement block");
                    var body = Block("generation", ["endgeneration"]);
                    EndBlock("endgeneration");
                    return new BlockStmt(body, token.Offset);
                }
            case "break":
            case "continue":
                if (_loopDepth == 0) throw Error($"'{token.Text}' outside of a loop", token.Offset);
                _index++;
                Expect(TokenType.BlockEnd, "end of statement block");
                return token.Text == "break" ? new BreakStmt(token.Offset) : new ContinueStmt(token.Offset);
        }
        var message = $"encountered unknown tag '{token.Text}'";
        if (_open.Count > 0)
        {
            var (tag, endTags) = _open[^1];
            message += $"; Jinja was looking for the following tags: {Quote(endTags)}. The innermost block that needs to be closed is '{tag}'";
        }
        throw Error(message, token.Offset);
    }

    private IfStmt ParseIf()
    {
        var offset = Next().Offset;
        var branches = new List<(Expr, List<Stmt>)>();
        List<Stmt>? elseBody = null;
        var test = ParseTuple(withCondExpr: false, IsStatementEnd);
        while (true)
        {
            Expect(TokenType.BlockEnd, "end of statement block");
            var body = Block("if", ["elif", "else", "endif"]);
            branches.Add((test, body));
            var tag = Next();
            if (tag.Text == "elif")
            {
                test = ParseTuple(withCondExpr: false, IsStatementEnd);
                continue;
            }
            if (tag.Text == "else")
            {
                Expect(TokenType.BlockEnd, "end of statement block");
                elseBody = Block("if", ["endif"]);
                EndBlock("endif");
            }
            else
            {
                Expect(TokenType.BlockEnd, "end of statement block");
            }
            return new IfStmt(branches, elseBody, offset);
        }
    }

    private ForStmt ParseFor()
    {
        var offset = Next().Offset;
        var target = ParseAssignTarget(allowAttribute: false, t => t.IsName("in"));
        ExpectName("in");
        var iterable = ParseTuple(withCondExpr: false, t => IsStatementEnd(t) || t.IsName("if") || t.IsName("recursive"));
        Expr? filter = null;
        if (SkipName("if")) filter = ParseExpression();
        if (Current.IsName("recursive")) throw Error("recursive loops are not supported", Current.Offset);
        Expect(TokenType.BlockEnd, "end of statement block");
        _loopDepth++;
        var body = Block("for", ["endfor", "else"]);
        _loopDepth--;
        List<Stmt>? elseBody = null;
        if (SkipName("else"))
        {
            Expect(TokenType.BlockEnd, "end of statement block");
            elseBody = Block("for", ["endfor"]);
        }
        EndBlock("endfor");
        return new ForStmt(target, iterable, filter, body, elseBody, offset);
    }

    private Stmt ParseSet()
    {
        var offset = Next().Offset;
        var target = ParseAssignTarget(allowAttribute: true, t => t.IsOperator("=") || t.IsOperator("|") || IsStatementEnd(t));
        if (SkipOperator("="))
        {
            var value = ParseTuple(withCondExpr: true, IsStatementEnd);
            Expect(TokenType.BlockEnd, "end of statement block");
            return new SetStmt(target, value, offset);
        }
        if (target is not NameExpr name) throw Error("a block assignment needs a single name", target.Offset);
        var filters = new List<FilterExpr>();
        while (SkipOperator("|")) filters.Add(ParseFilter(null));
        Expect(TokenType.BlockEnd, "end of statement block");
        var body = Block("set", ["endset"]);
        EndBlock("endset");
        return new SetBlockStmt(name.Name, filters, body, offset);
    }

    private MacroStmt ParseMacro()
    {
        var offset = Next().Offset;
        var name = ExpectIdentifier();
        ExpectOperator("(");
        var parameters = new List<(string, Expr?)>();
        while (!SkipOperator(")"))
        {
            if (parameters.Count > 0) ExpectOperator(",");
            if (SkipOperator(")")) break;
            var parameter = ExpectIdentifier();
            Expr? defaultValue = SkipOperator("=") ? ParseExpression() : null;
            if (defaultValue is null && parameters.Count > 0 && parameters[^1].Item2 is not null)
                throw Error("a parameter without a default follows one with a default", Current.Offset);
            parameters.Add((parameter, defaultValue));
        }
        Expect(TokenType.BlockEnd, "end of statement block");
        var loopDepth = _loopDepth;
        _loopDepth = 0;
        var body = Block("macro", ["endmacro"]);
        _loopDepth = loopDepth;
        EndBlock("endmacro");
        return new MacroStmt(name, parameters, body, offset);
    }

    private FilterBlockStmt ParseFilterBlock()
    {
        var offset = Next().Offset;
        var filters = new List<FilterExpr> { ParseFilter(null) };
        while (SkipOperator("|")) filters.Add(ParseFilter(null));
        Expect(TokenType.BlockEnd, "end of statement block");
        var body = Block("filter", ["endfilter"]);
        EndBlock("endfilter");
        return new FilterBlockStmt(filters, body, offset);
    }

    // A name, name.attribute (namespace assignment) or a tuple of targets, possibly nested in parentheses.
    private Expr ParseAssignTarget(bool allowAttribute, Func<Token, bool> isEnd)
    {
        var offset = Current.Offset;
        var items = new List<Expr>();
        var sawComma = false;
        while (true)
        {
            items.Add(ParseTargetAtom(allowAttribute));
            if (!SkipOperator(",")) break;
            sawComma = true;
            if (isEnd(Current)) break;
        }
        if (items.Count == 1 && !sawComma) return items[0];
        if (items.Any(i => i is AttrExpr)) throw Error("cannot unpack into an attribute", offset);
        return new TupleExpr(items, offset);
    }

    private Expr ParseTargetAtom(bool allowAttribute)
    {
        var offset = Current.Offset;
        if (SkipOperator("("))
        {
            var inner = ParseAssignTarget(allowAttribute: false, t => t.IsOperator(")"));
            ExpectOperator(")");
            return inner;
        }
        var name = ExpectIdentifier();
        if (name is "true" or "false" or "none" or "True" or "False" or "None") throw Error($"cannot assign to '{name}'", offset);
        return allowAttribute && SkipOperator(".") ? new AttrExpr(new NameExpr(name, offset), ExpectIdentifier(), offset) : new NameExpr(name, offset);
    }

    private static bool IsStatementEnd(Token t) => t.Type is TokenType.BlockEnd or TokenType.VariableEnd or TokenType.Eof;

    private Expr ParseTuple(bool withCondExpr, Func<Token, bool> isEnd)
    {
        var offset = Current.Offset;
        var items = new List<Expr>();
        var sawComma = false;
        while (true)
        {
            if (items.Count > 0)
            {
                if (!SkipOperator(",")) break;
                sawComma = true;
            }
            if (isEnd(Current) || Current.IsOperator(")")) break;
            items.Add(withCondExpr ? ParseExpression() : ParseOr());
        }
        if (items.Count == 0) throw Unexpected(Current);
        return items.Count == 1 && !sawComma ? items[0] : new TupleExpr(items, offset);
    }

    private Expr ParseExpression() => ParseCondExpr();

    private Expr ParseCondExpr()
    {
        var expr = ParseOr();
        while (Current.IsName("if"))
        {
            var offset = Next().Offset;
            var test = ParseOr();
            Expr? otherwise = SkipName("else") ? ParseCondExpr() : null;
            expr = new CondExpr(test, expr, otherwise, offset);
        }
        return expr;
    }

    private Expr ParseOr()
    {
        var left = ParseAnd();
        while (Current.IsName("or"))
        {
            var offset = Next().Offset;
            left = new BinaryExpr("or", left, ParseAnd(), offset);
        }
        return left;
    }

    private Expr ParseAnd()
    {
        var left = ParseNot();
        while (Current.IsName("and"))
        {
            var offset = Next().Offset;
            left = new BinaryExpr("and", left, ParseNot(), offset);
        }
        return left;
    }

    private Expr ParseNot()
    {
        if (Current.IsName("not"))
        {
            var offset = Next().Offset;
            return new UnaryExpr("not", ParseNot(), offset);
        }
        return ParseCompare();
    }

    private Expr ParseCompare()
    {
        var offset = Current.Offset;
        var first = ParseMath1();
        var rest = new List<(string, Expr)>();
        while (true)
        {
            if (Current.Type == TokenType.Operator && CompareOps.Contains(Current.Text))
            {
                var op = Next().Text;
                rest.Add((op, ParseMath1()));
            }
            else if (SkipName("in"))
            {
                rest.Add(("in", ParseMath1()));
            }
            else if (Current.IsName("not") && Peek().IsName("in"))
            {
                _index += 2;
                rest.Add(("not in", ParseMath1()));
            }
            else
            {
                break;
            }
        }
        return rest.Count == 0 ? first : new CompareExpr(first, rest, offset);
    }

    private Expr ParseMath1()
    {
        var left = ParseConcat();
        while (Current.IsOperator("+") || Current.IsOperator("-"))
        {
            var op = Next();
            left = new BinaryExpr(op.Text, left, ParseConcat(), op.Offset);
        }
        return left;
    }

    private Expr ParseConcat()
    {
        var left = ParseMath2();
        while (Current.IsOperator("~"))
        {
            var op = Next();
            left = new BinaryExpr("~", left, ParseMath2(), op.Offset);
        }
        return left;
    }

    private Expr ParseMath2()
    {
        var left = ParsePow();
        while (Current.Type == TokenType.Operator && Current.Text is "*" or "/" or "//" or "%")
        {
            var op = Next();
            left = new BinaryExpr(op.Text, left, ParsePow(), op.Offset);
        }
        return left;
    }

    private Expr ParsePow()
    {
        var left = ParseUnary(withFilter: true);
        while (Current.IsOperator("**"))
        {
            var op = Next();
            left = new BinaryExpr("**", left, ParseUnary(withFilter: true), op.Offset);
        }
        return left;
    }

    private Expr ParseUnary(bool withFilter)
    {
        Expr node;
        if (Current.IsOperator("-") || Current.IsOperator("+"))
        {
            var op = Next();
            node = new UnaryExpr(op.Text, ParseUnary(withFilter: false), op.Offset);
        }
        else
        {
            node = ParsePrimary();
        }
        node = ParsePostfix(node);
        return withFilter ? ParseFilterExpr(node) : node;
    }

    private Expr ParsePrimary()
    {
        var token = Current;
        switch (token.Type)
        {
            case TokenType.Name:
                _index++;
                return token.Text switch
                {
                    "true" or "True" => new ConstExpr(true, token.Offset),
                    "false" or "False" => new ConstExpr(false, token.Offset),
                    "none" or "None" => new ConstExpr(null, token.Offset),
                    _ => new NameExpr(token.Text, token.Offset),
                };
            case TokenType.String:
                {
                    // Adjacent string literals concatenate, as in Python.
                    var text = (string)Next().Value!;
                    while (Current.Type == TokenType.String) text += (string)Next().Value!;
                    return new ConstExpr(text, token.Offset);
                }
            case TokenType.Integer:
            case TokenType.Float:
                _index++;
                return new ConstExpr(token.Value, token.Offset);
            case TokenType.Operator when token.Text == "(":
                {
                    _index++;
                    if (SkipOperator(")")) return new TupleExpr([], token.Offset);
                    var inner = ParseTuple(withCondExpr: true, t => t.IsOperator(")") || IsStatementEnd(t));
                    ExpectOperator(")");
                    return inner;
                }
            case TokenType.Operator when token.Text == "[":
                {
                    _index++;
                    var items = new List<Expr>();
                    while (!SkipOperator("]"))
                    {
                        if (items.Count > 0) ExpectOperator(",");
                        if (SkipOperator("]")) break;
                        items.Add(ParseExpression());
                    }
                    return new ListExpr(items, token.Offset);
                }
            case TokenType.Operator when token.Text == "{":
                {
                    _index++;
                    var items = new List<(Expr, Expr)>();
                    while (!SkipOperator("}"))
                    {
                        if (items.Count > 0) ExpectOperator(",");
                        if (SkipOperator("}")) break;
                        var key = ParseExpression();
                        ExpectOperator(":");
                        items.Add((key, ParseExpression()));
                    }
                    return new DictExpr(items, token.Offset);
                }
            default:
                throw Unexpected(token);
        }
    }

    private Expr ParsePostfix(Expr node)
    {
        while (true)
        {
            if (Current.IsOperator("."))
            {
                var dot = Next();
                var attr = Next();
                node = attr.Type switch
                {
                    TokenType.Name => new AttrExpr(node, attr.Text, dot.Offset),
                    TokenType.Integer => new ItemExpr(node, new ConstExpr(attr.Value, attr.Offset), dot.Offset),
                    _ => throw Error($"expected name or number after '.', got {attr.Describe()}", attr.Offset),
                };
            }
            else if (Current.IsOperator("["))
            {
                node = ParseSubscript(node);
            }
            else if (Current.IsOperator("("))
            {
                node = ParseCall(node);
            }
            else
            {
                return node;
            }
        }
    }

    private Expr ParseSubscript(Expr node)
    {
        var offset = Next().Offset;
        Expr? start = null;
        if (!Current.IsOperator(":"))
        {
            start = ParseExpression();
            if (SkipOperator("]")) return new ItemExpr(node, start, offset);
        }
        ExpectOperator(":");
        Expr? stop = Current.IsOperator("]") || Current.IsOperator(":") ? null : ParseExpression();
        Expr? step = null;
        if (SkipOperator(":") && !Current.IsOperator("]")) step = ParseExpression();
        ExpectOperator("]");
        return new SliceExpr(node, start, stop, step, offset);
    }

    private CallExpr ParseCall(Expr callee)
    {
        var offset = Current.Offset;
        var (args, kwargs) = ParseCallArgs();
        return new CallExpr(callee, args, kwargs, offset);
    }

    private (List<Expr>, List<(string, Expr)>) ParseCallArgs()
    {
        ExpectOperator("(");
        var args = new List<Expr>();
        var kwargs = new List<(string, Expr)>();
        while (!SkipOperator(")"))
        {
            if (args.Count + kwargs.Count > 0) ExpectOperator(",");
            if (SkipOperator(")")) break;
            if (Current.IsOperator("*") || Current.IsOperator("**")) throw Error("*args and **kwargs in calls are not supported", Current.Offset);
            if (Current.Type == TokenType.Name && Peek().IsOperator("="))
            {
                var name = Next().Text;
                _index++;
                kwargs.Add((name, ParseExpression()));
            }
            else
            {
                if (kwargs.Count > 0) throw Error("positional argument follows keyword argument", Current.Offset);
                args.Add(ParseExpression());
            }
        }
        return (args, kwargs);
    }

    private Expr ParseFilterExpr(Expr node)
    {
        while (true)
        {
            if (SkipOperator("|")) node = ParseFilter(node);
            else if (Current.IsName("is")) node = ParseTest(node);
            else if (Current.IsOperator("(")) node = ParseCall(node);
            else return node;
        }
    }

    private FilterExpr ParseFilter(Expr? value)
    {
        var offset = Current.Offset;
        var name = ExpectIdentifier();
        while (SkipOperator(".")) name += "." + ExpectIdentifier();
        if (!Builtins.HasFilter(name)) throw Error($"no filter named '{name}'", offset);
        if (!Current.IsOperator("(")) return new FilterExpr(value, name, [], [], offset);
        var (args, kwargs) = ParseCallArgs();
        return new FilterExpr(value, name, args, kwargs, offset);
    }

    private TestExpr ParseTest(Expr value)
    {
        var offset = Next().Offset;
        var negated = SkipName("not");
        var name = ExpectIdentifier();
        while (SkipOperator(".")) name += "." + ExpectIdentifier();
        if (!Builtins.HasTest(name)) throw Error($"no test named '{name}'", offset);
        var args = new List<Expr>();
        var t = Current;
        if (t.IsOperator("("))
        {
            var (positional, kwargs) = ParseCallArgs();
            if (kwargs.Count > 0) throw Error("keyword arguments to tests are not supported", offset);
            args = positional;
        }
        else if ((t.Type is TokenType.Name or TokenType.String or TokenType.Integer or TokenType.Float || t.IsOperator("[") || t.IsOperator("{"))
                 && !t.IsName("else") && !t.IsName("or") && !t.IsName("and"))
        {
            if (t.IsName("is")) throw Error("you cannot chain multiple tests with is", t.Offset);
            args.Add(ParsePostfix(ParsePrimary()));
        }
        return new TestExpr(value, name, args, negated, offset);
    }
}
