"""What a cell reads from the notebook and assigns back, found with ast (pure)."""

from __future__ import annotations

import textwrap

import pytest

from batchbook.notebook.cellcode import cell_names


def names(source: str) -> tuple[list[str], list[str], list[str]]:
    found = cell_names(textwrap.dedent(source))
    return list(found.reads), list(found.assigns), list(found.imports)


def test_reads_before_assignment_are_taken_and_later_reads_of_assigned_names_are_not() -> None:
    reads, assigns, _ = names(
        """
        data = load(path)
        result = fit(data, alpha)
        x = x + 1
        y += 2
        """
    )
    assert reads == ["load", "path", "fit", "alpha", "x", "y"]  # data is the cell's own by then
    assert assigns == ["data", "result", "x", "y"]


def test_conditional_bindings_do_not_shadow_later_reads() -> None:
    reads, assigns, _ = names(
        """
        if flag:
            model = new()
        print(model)
        for row in rows:
            total = row
        print(total, row)
        """
    )
    # row inside the loop is the loop's; after it, it may not be bound (an empty loop)
    assert reads == ["flag", "new", "print", "model", "rows", "total", "row"]
    assert assigns == ["model", "row", "total"]


def test_comprehensions_functions_lambdas_and_classes_have_their_own_names() -> None:
    reads, assigns, _ = names(
        """
        squares = [v * k for v in values if v > limit for k in range(v)]
        table = {key: scale * key for key in keys}
        def helper(a, *rest, factor=default_factor, **kw):
            inner = a * factor
            def deeper():
                return inner + offset
            return deeper() + sum(rest) + len(kw)
        pick = lambda item: item[column]
        class Model(Base):
            size = width
            def area(self):
                return self.size * height
        """
    )
    assert reads == [
        "values", "limit", "range", "keys", "scale", "default_factor", "offset", "sum",
        "len", "column", "Base", "width", "height",
    ]  # fmt: skip
    assert assigns == ["squares", "table", "helper", "pick", "Model"]


def test_attribute_access_reads_the_object_and_subscript_assignment_binds_nothing() -> None:
    reads, assigns, _ = names(
        """
        frame.columns = names
        cache[key] = compute(frame.shape[0])
        obj.method().attr
        """
    )
    assert reads == ["names", "frame", "compute", "cache", "key", "obj"]
    assert assigns == []


def test_imports_run_on_the_worker_and_are_not_brought_back() -> None:
    reads, assigns, imports = names(
        """
        import numpy as np
        import os.path
        from math import sqrt as root, pi
        values = np.arange(n)
        r = root(pi) + os.path.sep.count('/')
        """
    )
    assert reads == ["n"]
    assert assigns == ["values", "r"]
    assert imports == ["np", "os", "root", "pi"]


def test_the_job_names_and_global_declarations() -> None:
    reads, assigns, _ = names(
        """
        out = BATCH_ITEM * BATCH_INDEX
        def bump():
            global counter
            counter = counter + 1
        BATCH_INDEX = 3
        """
    )
    assert reads == ["counter"]
    assert assigns == ["out", "bump"]


def test_walrus_and_except_and_with_names_bind_at_the_top() -> None:
    reads, assigns, _ = names(
        """
        if (n := count_items(xs)) > 1:
            pass
        try:
            risky()
        except ValueError as err:
            message = str(err)
        with opener(p) as handle:
            text = handle.read()
        """
    )
    assert "err" not in reads and "handle" not in reads
    assert reads[:3] == ["count_items", "xs", "risky"]
    assert assigns == ["n", "err", "message", "handle", "text"]


def test_del_match_globals_methods_and_subscript_targets() -> None:
    reads, _, _ = names(
        """
        del big
        match point:
            case Point(x=0) if limit > 0:
                pass
            case Color.RED:
                pass
            case [first, *rest] if first > rest[0]:
                pass
        def bump():
            global total
            total += 1
        class A:
            y = 1
            def f(self):
                return y
        for d["k"] in pairs:
            pass
        """
    )
    assert reads == ["big", "point", "Point", "Color", "limit", "total", "y", "pairs", "d"]


def test_a_syntax_error_is_raised() -> None:
    with pytest.raises(SyntaxError):
        cell_names("x = (")
