"""What a cell reads from the notebook and what it assigns, found with ``ast`` (pure).

A cell run as a job takes with it only the notebook's names it may read before it assigns
them, and brings back the names it assigns at its top level. Scopes are followed as Python
resolves them: a function's parameters and locals, a comprehension's targets and a class
body's names are not the notebook's; a name such a scope reads that it does not bind is
the notebook's, and it is read at the statement that defines the scope (so it is taken if
the notebook has it then, to be safe). A statement that always binds a name (``x = ...``,
``import x``, ``def x``, ``class x``) makes later reads of it in its block the cell's own;
a binding inside ``if``, ``for``, ``try``, ... counts only inside that block.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

CELL_NAMES = ("BATCH_INDEX", "BATCH_ITEM")  # what the job gives the cell, never taken along

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)
_COMPREHENSIONS = (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)
_ALWAYS_BINDS = (
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.Import,
    ast.ImportFrom,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.ClassDef,
)


@dataclass(frozen=True)
class CellNames:
    """The notebook names a cell may read (in order of first use), the names it assigns at
    its top level (in order), and those its imports bind (they stay on the worker)."""

    reads: tuple[str, ...]
    assigns: tuple[str, ...]
    imports: tuple[str, ...]


def cell_names(source: str) -> CellNames:
    """Read and assigned names of a cell's Python source (a SyntaxError if it is not Python)."""
    tree = ast.parse(source)
    reads = dict.fromkeys(n for n in _block_reads(tree.body, set()) if n not in CELL_NAMES)
    assigns: dict[str, None] = {}  # ordered sets
    imports: dict[str, None] = {}
    for statement in tree.body:
        for name in _binds(statement):
            is_import = isinstance(statement, ast.Import | ast.ImportFrom)
            (imports if is_import else assigns).setdefault(name)
    for name in (*imports, *CELL_NAMES):  # an imported name is the worker's module
        assigns.pop(name, None)
    return CellNames(tuple(reads), tuple(assigns), tuple(imports))


def _block_reads(body: list[ast.stmt], defined: set[str]) -> Iterator[str]:
    """The notebook names a block of statements reads, statement by statement: ``defined``
    holds the names always bound by then, and grows as the block binds more. A nested block
    (a loop's, a branch's, a handler's) starts with what is bound on entering it (the loop
    target, the ``as`` name); what it binds counts after it only for ``with``, whose body
    always runs."""
    for statement in body:
        blocks = _sub_blocks(statement)
        if blocks is None:  # a simple statement (or a def or class): its reads, then its binds
            yield from (n for n in _reads(statement, frozenset()) if n not in defined)
            if isinstance(statement, _ALWAYS_BINDS) and (
                not isinstance(statement, ast.AnnAssign) or statement.value is not None
            ):
                defined |= set(_binds(statement))
            continue
        heads, inner = blocks
        for head in heads:  # tests, iterables, context managers: read on entry
            yield from (n for n in _reads(head, frozenset()) if n not in defined)
        for entry, block in inner:
            within = defined | set(entry)
            yield from _block_reads(block, within)
            if isinstance(statement, ast.With | ast.AsyncWith):
                defined |= within


Blocks = tuple[list[ast.AST], list[tuple[list[str], list[ast.stmt]]]]


def _sub_blocks(s: ast.stmt) -> Blocks | None:
    """A compound statement as (what it reads on entry, [(names bound on entering a block,
    the block)]); None for a simple statement."""
    if isinstance(s, ast.For | ast.AsyncFor):
        # the iterable is read, and what a target like d["k"] reads (d)
        return [s.iter, s.target], [(_target_names(s.target), s.body), ([], s.orelse)]
    if isinstance(s, ast.While | ast.If):
        return [s.test], [([], s.body), ([], s.orelse)]
    if isinstance(s, ast.With | ast.AsyncWith):
        bound = [n for i in s.items if i.optional_vars for n in _target_names(i.optional_vars)]
        return [i.context_expr for i in s.items], [(bound, s.body)]
    if isinstance(s, ast.Try | ast.TryStar):
        blocks: list[tuple[list[str], list[ast.stmt]]] = [([], s.body)]
        for h in s.handlers:  # the exception's type is read when the handler is reached
            caught = [ast.Expr(h.type)] if h.type is not None else []
            blocks.append(([h.name] if h.name else [], [*caught, *h.body]))
        return [], [*blocks, ([], s.orelse), ([], s.finalbody)]
    if isinstance(s, ast.Match):
        # the classes and values in patterns are read; a guard runs with the captures bound
        heads: list[ast.AST] = [s.subject, *(c.pattern for c in s.cases)]
        cases: list[tuple[list[str], list[ast.stmt]]] = [
            (list(_bound_by(c.pattern)), [*([ast.Expr(c.guard)] if c.guard else []), *c.body])
            for c in s.cases
        ]
        return heads, cases
    return None


def _target_names(target: ast.AST) -> list[str]:
    """The names a target binds (``d["k"]`` binds none: it reads d)."""
    return [
        n.id for n in ast.walk(target) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)
    ]


def _reads(node: ast.AST, enclosing: frozenset[str]) -> Iterator[str]:
    """Names ``node`` loads that are not bound by an enclosing function scope (so are the
    notebook's), in source order; ``enclosing``: names the enclosing function scopes bind."""
    if isinstance(node, ast.Name):  # `del x` needs x as much as reading it does
        if isinstance(node.ctx, ast.Load | ast.Del) and node.id not in enclosing:
            yield node.id
        return
    augmented = node.target if isinstance(node, ast.AugAssign) else None
    if isinstance(augmented, ast.Name) and augmented.id not in enclosing:
        yield augmented.id  # x += 1 reads x first (a global's too)
    if isinstance(node, _SCOPES):
        yield from _scope_reads(node, enclosing)
        return
    if isinstance(node, _COMPREHENSIONS):
        yield from _comprehension_reads(node, enclosing)
        return
    if isinstance(node, ast.Assign):  # the value runs before the targets are bound
        yield from _reads(node.value, enclosing)
        for target in node.targets:
            yield from _reads(target, enclosing)
        return
    for child in ast.iter_child_nodes(node):
        yield from _reads(child, enclosing)


def _scope_reads(node: ast.AST, enclosing: frozenset[str]) -> Iterator[str]:
    """A def, lambda or class: decorators, defaults, bases and annotations are read where
    it is defined; its body in its own scope."""
    outside: list[ast.AST] = list(getattr(node, "decorator_list", []))
    if isinstance(node, ast.ClassDef):
        outside += node.bases + [k.value for k in node.keywords]
        body: list[ast.AST] = list(node.body)
        params: set[str] = set()
    else:
        assert isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
        args = node.args
        outside += [d for d in args.defaults + args.kw_defaults if d is not None]
        every = args.posonlyargs + args.args + args.kwonlyargs
        every += [a for a in (args.vararg, args.kwarg) if a is not None]
        if not isinstance(node, ast.Lambda):
            outside += [a.annotation for a in every if a.annotation is not None]
            outside += [node.returns] if node.returns is not None else []
        params = {a.arg for a in every}
        body = list(node.body) if isinstance(node.body, list) else [node.body]
    for part in outside:
        yield from _reads(part, enclosing)
    declared_global = {
        n for b in body for s in ast.walk(b) if isinstance(s, ast.Global) for n in s.names
    }
    local = (params | set(_binds_in(body))) - declared_global
    inner = enclosing | local if not isinstance(node, ast.ClassDef) else enclosing
    for part in body:
        # a class body's own names, read in it, are its own; its methods do not see them
        own = (
            local if not isinstance(node, ast.ClassDef) or not isinstance(part, _SCOPES) else set()
        )
        for name in _reads(part, inner):
            if name not in own:
                yield name


def _comprehension_reads(node: ast.AST, enclosing: frozenset[str]) -> Iterator[str]:
    """The first iterable is read outside; the targets are the comprehension's own."""
    generators: list[ast.comprehension] = node.generators  # type: ignore[attr-defined]
    yield from _reads(generators[0].iter, enclosing)
    inner = enclosing | frozenset(n for g in generators for n in _target_names(g.target))
    parts: list[ast.AST] = []
    for k, generator in enumerate(generators):  # in source order
        parts += ([generator.iter] if k else []) + generator.ifs
    if isinstance(node, ast.DictComp):
        parts += [node.key, node.value]
    else:
        parts.append(node.elt)  # type: ignore[attr-defined]
    for part in parts:
        yield from _reads(part, inner)


def _binds(statement: ast.stmt) -> Iterator[str]:
    """The names a top-level statement binds at the top level (not in scopes it defines)."""
    yield from _binds_in([statement])


def _binds_in(body: Iterable[ast.AST]) -> Iterator[str]:
    """Names bound in these statements' own scope, in order (nested scopes' insides excluded)."""
    for node in body:
        yield from _bound_by(node)


def _bound_by(node: ast.AST) -> Iterator[str]:
    if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
        yield node.id
        return
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        yield node.name
        return
    if isinstance(node, ast.Lambda | ast.Global | ast.Nonlocal):
        return
    if isinstance(node, _COMPREHENSIONS):  # only a walrus in it binds outside
        yield from (n.target.id for n in ast.walk(node) if isinstance(n, ast.NamedExpr))
        return
    if isinstance(node, ast.Import | ast.ImportFrom):
        for alias in node.names:
            if alias.name != "*":
                yield alias.asname or alias.name.partition(".")[0]
        return
    if isinstance(node, ast.ExceptHandler) and node.name:
        yield node.name
    if isinstance(node, ast.MatchAs | ast.MatchStar) and node.name:
        yield node.name
    if isinstance(node, ast.MatchMapping) and node.rest:
        yield node.rest
    for child in ast.iter_child_nodes(node):
        yield from _bound_by(child)
