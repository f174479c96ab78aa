namespace Turbine.Tokenizers.ChatTemplates;

/// <summary>A node of the parsed template; <see cref="Offset"/> locates it in the source for error messages.</summary>
internal abstract record Node(int Offset);

internal abstract record Expr(int Offset) : Node(Offset);

internal sealed record ConstExpr(object? Value, int Offset) : Expr(Offset);

internal sealed record NameExpr(string Name, int Offset) : Expr(Offset);

internal sealed record AttrExpr(Expr Target, string Name, int Offset) : Expr(Offset);

internal sealed record ItemExpr(Expr Target, Expr Key, int Offset) : Expr(Offset);

internal sealed record SliceExpr(Expr Target, Expr? Start, Expr? Stop, Expr? Step, int Offset) : Expr(Offset);

internal sealed record CallExpr(Expr Callee, List<Expr> Args, List<(string Name, Expr Value)> Kwargs, int Offset) : Expr(Offset);

internal sealed record FilterExpr(Expr? Value, string Name, List<Expr> Args, List<(string Name, Expr Value)> Kwargs, int Offset) : Expr(Offset);

internal sealed record TestExpr(Expr Value, string Name, List<Expr> Args, bool Negated, int Offset) : Expr(Offset);

internal sealed record UnaryExpr(string Op, Expr Operand, int Offset) : Expr(Offset);

internal sealed record BinaryExpr(string Op, Expr Left, Expr Right, int Offset) : Expr(Offset);

internal sealed record CompareExpr(Expr First, List<(string Op, Expr Operand)> Rest, int Offset) : Expr(Offset);

internal sealed record CondExpr(Expr Test, Expr Then, Expr? Else, int Offset) : Expr(Offset);

internal sealed record ListExpr(List<Expr> Items, int Offset) : Expr(Offset);

internal sealed record TupleExpr(List<Expr> Items, int Offset) : Expr(Offset);

internal sealed record DictExpr(List<(Expr Key, Expr Value)> Items, int Offset) : Expr(Offset);

internal abstract record Stmt(int Offset) : Node(Offset);

internal sealed record DataStmt(string Text, int Offset) : Stmt(Offset);

internal sealed record OutputStmt(Expr Value, int Offset) : Stmt(Offset);

internal sealed record IfStmt(List<(Expr Test, List<Stmt> Body)> Branches, List<Stmt>? Else, int Offset) : Stmt(Offset);

internal sealed record ForStmt(Expr Target, Expr Iterable, Expr? Filter, List<Stmt> Body, List<Stmt>? Else, int Offset) : Stmt(Offset);

internal sealed record SetStmt(Expr Target, Expr Value, int Offset) : Stmt(Offset);

internal sealed record SetBlockStmt(string Name, List<FilterExpr> Filters, List<Stmt> Body, int Offset) : Stmt(Offset);

internal sealed record MacroStmt(string Name, List<(string Name, Expr? Default)> Parameters, List<Stmt> Body, int Offset) : Stmt(Offset);

internal sealed record FilterBlockStmt(List<FilterExpr> Filters, List<Stmt> Body, int Offset) : Stmt(Offset);

internal sealed record BreakStmt(int Offset) : Stmt(Offset);

internal sealed record ContinueStmt(int Offset) : Stmt(Offset);

/// <summary>Statements rendered in place, e.g. the body of a <c>{% generation %}</c> block.</summary>
internal sealed record BlockStmt(List<Stmt> Body, int Offset) : Stmt(Offset);
