"""Python-syntax parameter files (``.prb``), read without running them.

A klusta/probeinterface ``.prb`` file is Python that other tools ``exec``; a crafted one would run
any code. It is parsed here with :mod:`ast` instead and only values are evaluated: literals
(numbers, strings, tuples, lists, dicts, sets), ``-x``, ``+ - * / // %`` on numbers, ``range(...)``
with ``list``/``tuple`` around it (what ``.prb`` files use for channel lists), numpy scalar reprs
such as ``np.int64(5)`` (read as the number they show), and names assigned earlier in the file. Anything else (imports, loops, comprehensions, other calls, attributes) is
refused with the line it is on; nothing is ever called but ``range``, ``list`` and ``tuple`` on
values already built.
"""
from __future__ import annotations

import ast
import operator
from pathlib import Path

#: the largest ``range`` a file may ask for (a probe has at most thousands of channels)
MAX_RANGE = 1_000_000
#: the largest whole number arithmetic may produce
MAX_INT = 2**63
_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_CALLS = {"range": range, "list": list, "tuple": tuple}
_NUMPY_SCALARS = {**{f"{k}{b}": int for k in ("int", "uint") for b in (8, 16, 32, 64)},
                  **{f"float{b}": float for b in (16, 32, 64)}}


class NotALiteral(ValueError):
    """A value the file computes in a way that would need running it; ``lineno`` says where."""

    def __init__(self, what: str, lineno: int) -> None:
        super().__init__(f"line {lineno}: {what}")
        self.lineno = lineno


def _number(value, node: ast.AST):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise NotALiteral(f"arithmetic on a {type(value).__name__}, not a number", node.lineno)
    return value


def evaluate(node: ast.AST, names: dict):
    """The value of expression ``node``, built only from the pieces this module allows."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        items = [evaluate(e, names) for e in node.elts]
        return {ast.Tuple: tuple, ast.List: list, ast.Set: set}[type(node)](items)
    if isinstance(node, ast.Dict):
        if any(k is None for k in node.keys):
            raise NotALiteral("a ** unpacking in a dict", node.lineno)
        return {evaluate(k, names): evaluate(v, names) for k, v in zip(node.keys, node.values)}
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _number(evaluate(node.operand, names), node)
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        left = _number(evaluate(node.left, names), node)
        right = _number(evaluate(node.right, names), node)
        try:
            value = _BINOPS[type(node.op)](left, right)
        except ZeroDivisionError:
            raise NotALiteral("a division by zero", node.lineno) from None
        if isinstance(value, int) and abs(value) > MAX_INT:  # repeated products grow without end
            raise NotALiteral(f"a whole number beyond {MAX_INT}", node.lineno)
        return value
    if isinstance(node, ast.Name):
        if node.id not in names:
            raise NotALiteral(f"the name {node.id!r}, which is not assigned above it", node.lineno)
        return names[node.id]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in _CALLS \
            and not node.keywords and not any(isinstance(a, ast.Starred) for a in node.args):
        args = [evaluate(a, names) for a in node.args]
        if node.func.id == "range":
            if not 1 <= len(args) <= 3 or not all(isinstance(a, int) and not isinstance(a, bool)
                                                  for a in args):
                raise NotALiteral("range() of anything but 1-3 whole numbers", node.lineno)
            r = range(*args)
            if len(r) > MAX_RANGE:
                raise NotALiteral(f"a range of {len(r)} numbers (at most {MAX_RANGE})", node.lineno)
            return r
        if len(args) != 1 or not isinstance(args[0], (list, tuple, range)):
            raise NotALiteral(f"{node.func.id}() of anything but one list, tuple or range",
                              node.lineno)
        return _CALLS[node.func.id](args[0])
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
            and isinstance(node.func.value, ast.Name) and node.func.value.id in ("np", "numpy") \
            and node.func.attr in _NUMPY_SCALARS and len(node.args) == 1 and not node.keywords:
        # numpy >= 2 writes scalars as np.int64(5) (probeinterface's write_prb does): the number
        # is taken as a Python int or float; numpy itself is not called
        return _NUMPY_SCALARS[node.func.attr](_number(evaluate(node.args[0], names), node))
    what = ast.unparse(node)
    raise NotALiteral(f"{what[:60]!r} needs running code", getattr(node, "lineno", 0))


def read_assignments(path: Path) -> dict:
    """``name = value`` assignments of a Python-syntax file, evaluated without running it.

    Raises:
        SyntaxError: not Python.
        NotALiteral: a statement other than a plain assignment (or a docstring), or a value
            that is not built from the allowed pieces.
        OSError, UnicodeDecodeError: the file cannot be read as text.
    """
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=str(path))
    names: dict = {}
    for stmt in tree.body:
        if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
            continue  # a docstring or stray literal
        if not isinstance(stmt, ast.Assign) or not all(isinstance(t, ast.Name) for t in stmt.targets):
            raise NotALiteral(f"a statement other than 'name = value' ({type(stmt).__name__})",
                              stmt.lineno)
        value = evaluate(stmt.value, names)
        for target in stmt.targets:
            names[target.id] = value
    return names
