"""Tables stored by columns: the row tables of the evidence (sheet rows, arms, data flow) at scale.

A sheet of 2,000,000 outcome rows held as one dict per row costs ~1 KB a row (2 GB) and a Python loop
over every cell; held by columns it is one list per column whose cells share their value objects
(a column repeats its codes, units and rounded numbers), ~16 MB a column, and checks run on whole
columns (:meth:`Table.floats` gives a numpy array). Rows are made only where a caller needs them
(:meth:`Table.rows`, :meth:`Table.row`), and they are fresh dicts: changing one does not change the
table.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from operator import itemgetter


class Table:
    """Rows stored by columns: ``columns`` maps each name to a list of one value per row.

    A column may be a tuple instead: read-only, e.g. one tuple of None shared by every column a sheet
    leaves out (a column is changed in place only where its table was made as a list). Every column has
    the same length. Values are plain Python objects (str, int, float, bool, None), as
    the rows of JSON or a validated sheet hold them.

    Examples
    --------
    >>> t = Table({"study_id": ["a", "b"], "n": [10, 12]})
    >>> len(t), t["n"], t.rows()[1]
    (2, [10, 12], {'study_id': 'b', 'n': 12})
    >>> t.take([1]).rows()
    [{'study_id': 'b', 'n': 12}]
    """

    __slots__ = ("columns", "length")

    def __init__(self, columns: Mapping[str, Sequence], length: int | None = None):
        self.columns = {
            name: values if isinstance(values, list | tuple) else list(values) for name, values in columns.items()
        }
        lengths = {len(v) for v in self.columns.values()}
        if length is None:
            if len(lengths) > 1:
                raise ValueError(f"columns differ in length: {sorted(lengths)}")
            length = lengths.pop() if lengths else 0
        elif lengths - {length}:
            raise ValueError(f"columns differ in length from {length}: {sorted(lengths)}")
        self.length = length

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping], names: Sequence[str] | None = None) -> Table:
        """The table of ``rows`` (dicts); ``names`` the columns (default: the first row's keys; a key
        missing from a row is None there)."""
        rows = rows if isinstance(rows, list) else list(rows)
        if names is None:
            names = list(rows[0]) if rows else []
        return cls({n: [r.get(n) for r in rows] for n in names}, len(rows))

    def __len__(self) -> int:
        return self.length

    def __bool__(self) -> bool:
        return self.length > 0

    def __contains__(self, name: object) -> bool:
        return name in self.columns

    def __getitem__(self, name: str) -> list:
        return self.columns[name]

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Table) and self.length == other.length and self.names == other.names
            and all(list(v) == list(other.columns[k]) for k, v in self.columns.items())
        )  # fmt: skip

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return f"Table({self.length} rows: {', '.join(self.columns)})"

    @property
    def names(self) -> list[str]:
        return list(self.columns)

    def get(self, name: str, default=None) -> list:
        """Column ``name``, or ``default`` repeated when the table has no such column."""
        got = self.columns.get(name)
        return got if got is not None else [default] * self.length

    def row(self, i: int) -> dict:
        """Row ``i`` as a new dict."""
        return {name: values[i] for name, values in self.columns.items()}

    def iter_rows(self) -> Iterator[dict]:
        """The rows as new dicts, one at a time."""
        names = list(self.columns)
        for values in zip(*self.columns.values(), strict=True):
            yield dict(zip(names, values, strict=True))
        if not names:
            yield from ({} for _ in range(self.length))

    def rows(self) -> list[dict]:
        """Every row as a new dict (the memory of one dict per row: for small tables or subsets)."""
        return list(self.iter_rows())

    def take(self, indices: Sequence[int]) -> Table:
        """The rows at ``indices`` (in that order) as a new table; the value objects are shared."""
        idx = indices if isinstance(indices, list) else [int(i) for i in indices]
        if not self.columns:
            return Table({}, len(idx))
        if len(idx) < 2:
            return Table({name: [values[i] for i in idx] for name, values in self.columns.items()}, len(idx))
        pick = itemgetter(*idx)  # one C loop per column
        return Table({name: list(pick(values)) for name, values in self.columns.items()}, len(idx))

    def where(self, mask: Sequence[bool]) -> Table:
        """The rows where ``mask`` is true."""
        return self.take([i for i, keep in enumerate(mask) if keep])

    def floats(self, name: str):
        """Column ``name`` as a float64 numpy array (None becomes NaN; booleans 0/1)."""
        import numpy as np

        values = self.get(name)
        if values.count(None) == len(values):  # an empty column: numpy converts None slowly, one at a time
            return np.full(len(values), np.nan)
        return np.array(values, dtype=float)
