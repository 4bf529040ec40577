"""What the catalog's and the rules' CSV files share (storage/catalog_csv.py, storage/rules_csv.py): a header that
names its columns, a BOM so Excel reads UTF-8, formula-safe cells both ways, and typed cells.

Each file's own module says which columns it has and what a row means; this one only reads and writes them.
"""
from __future__ import annotations

import csv
import io
from typing import Any, Iterable, Mapping, Sequence

from storage.exports import safe, unsafe

Rows = list[tuple[int, dict[str, str]]]
_TRUE, _FALSE = ("1", "true", "yes", "y"), ("0", "false", "no", "n")


def write(columns: Sequence[str], records: Iterable[Mapping[str, Any]]) -> str:
    """The records as CSV text with a BOM; a bool is ``true``/``false``, None an empty cell."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(columns)
    for values in records:
        writer.writerow([safe("" if values[c] is None else
                              ("true" if values[c] else "false") if isinstance(values[c], bool) else values[c])
                         for c in columns])
    return "\ufeff" + out.getvalue()


def read(text: str, columns: Sequence[str], required: Sequence[str]) -> tuple[Rows, str]:
    """(line, cells) of every row, or the problem with the header (the missing columns named)."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [(h or "").strip() for h in reader.fieldnames or []]
    missing = [c for c in required if c not in header]
    if missing:
        return [], f"missing column(s): {', '.join(missing)}"
    reader.fieldnames = header
    return [(reader.line_num, {k: unsafe((v or "").strip()) for k, v in row.items() if k in columns})
            for row in reader], ""


def typed(cells: dict[str, str], numbers: Sequence[str],
          number_problem: Mapping[str, str] | None = None) -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The cells as typed values (whole numbers, ``active`` as a bool, None for an empty number); a cell that is not a
    number or a yes/no is a ``(field, code)`` problem, the code the field's name unless ``number_problem`` says."""
    values: dict[str, Any] = {}
    problems = []
    for name, cell in cells.items():
        if name in numbers:
            try:
                values[name] = int(cell) if cell else None
            except ValueError:
                problems.append((name, (number_problem or {}).get(name, name)))
        elif name == "active":
            folded = cell.casefold()
            if folded not in _TRUE + _FALSE + ("",):
                problems.append((name, name))
            values[name] = folded not in _FALSE
        else:
            values[name] = cell
    return values, problems
