"""The layers of docs/architecture.md, checked by walking every import (function-level ones too).

The core (``bot/core/``) and the layers under it know no platform, no HTTP and no edge, so a new edge
(the HR console, DingTalk Stream) calls the same core as the chat callbacks.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EDGES = ("flask", "werkzeug", "requests", "playground", "console", "app", "cli", "devserver")
PLATFORM = tuple(f"bot.{m}" for m in ("wecom", "dingtalk", "web", "delivery", "spool", "clients", "http", "crypto",
                                      "tokens", "errors", "approvals_sync", "clockutil"))
FORBIDDEN = {
    "bot/core": (*EDGES, *PLATFORM, "handlers", "scheduler"),
    "handlers": (*EDGES, *PLATFORM, "scheduler", "sqlalchemy"),  # no SQL: handlers call storage/
    "cards": (*EDGES, "bot", "storage", "handlers", "scheduler"),
    "storage": (*EDGES, "bot", "cards", "handlers", "scheduler"),
    "scheduler": (*EDGES, "bot", "handlers", "sqlalchemy"),  # jobs call storage/, which holds the SQL
    # the HR console is an edge over the services: no chat platform, no handler, no SQL of its own
    "console": ("playground", "app", "cli", "devserver", *PLATFORM, "handlers", "scheduler", "sqlalchemy",
                "requests"),
}
TOP = ("bot", "handlers", "cards", "storage", "scheduler", "playground", "console", "settings", "settings_rules",
       "telemetry", "app", "cli")


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]  # ``from storage import fastsql``
    return names


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def _modules() -> dict[str, list[str]]:
    """Every module of ours (relative path) with what it imports."""
    files = [p for top in TOP for p in ([ROOT / f"{top}.py"] + sorted((ROOT / top).rglob("*.py")))
             if p.exists()]
    return {str(f.relative_to(ROOT)): _imports(f) for f in files}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_the_edge(package: str) -> None:
    files = list((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    bad = [f"{f.relative_to(ROOT)} imports {name}" for f in files for name in _imports(f)
           if _under(name, FORBIDDEN[package])]
    assert bad == []


def test_only_the_factory_imports_an_edge_package() -> None:
    bad = [f"{path} imports {name}" for path, names in _modules().items() for name in names
           if _under(name, ("playground", "console")) and path != "app.py"
           and not path.startswith(("playground/", "console/"))]
    assert bad == []


def test_no_cycle_between_top_level_packages() -> None:
    graph: dict[str, set[str]] = {top: set() for top in TOP}
    for path, names in _modules().items():
        here = Path(path).parts[0].removesuffix(".py")
        graph[here] |= {n.split(".")[0] for n in names if n.split(".")[0] in TOP} - {here}
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        if state.get(node) == 1:
            raise AssertionError("import cycle: " + " → ".join(trail[trail.index(node):] + [node]))
        if state.get(node) == 2:
            return
        state[node] = 1
        for nxt in sorted(graph[node]):
            visit(nxt, trail + [node])
        state[node] = 2
        order.append(node)

    for top in TOP:
        visit(top, [])
    assert order.index("storage") < order.index("handlers") < order.index("app")


def test_cards_are_built_only_in_cards() -> None:
    """One place words every card (cards/builders*.py, cards/messages.py): no Card(...) or Button(...) elsewhere."""
    built = []
    for path in _modules():
        if path.startswith("cards/"):
            continue
        for node in ast.walk(ast.parse((ROOT / path).read_text(encoding="utf-8"))):
            func = node.func if isinstance(node, ast.Call) else None
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name in ("Card", "Button"):
                built.append(f"{path}:{node.lineno} {name}(...)")
    assert built == []


def test_handlers_word_no_reply() -> None:
    """A handler's replies are worded in cards/ (messages.py, builders*.py); what stays in a handler module is
    its route's own description: aliases, usage, examples and summary (module-level constants and the
    ``register`` call)."""
    cjk = re.compile(r"[\u4e00-\u9fff]")
    found = []
    for path in sorted((ROOT / "handlers").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name != "register"):
            body = fn.body[1:] if ast.get_docstring(fn) else fn.body
            for node in (sub for stmt in body for sub in ast.walk(stmt)):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and cjk.search(node.value):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.value[:30]!r}")
    assert found == []


def _worded(path: Path) -> list[str]:
    """Chinese string constants of a module, docstrings aside."""
    cjk = re.compile(r"[\u4e00-\u9fff]")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef)) and ast.get_docstring(n) is not None}
    return [f"{path.relative_to(ROOT)}:{n.lineno} {n.value[:30]!r}" for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and cjk.search(n.value) and id(n) not in docs]


def test_storage_scheduler_and_core_word_nothing_but_stored_memos() -> None:
    """storage/ raises errors as codes and returns data; only the memos stored with a record are worded there
    (storage/memos.py, which says why). The jobs and the neutral core word nothing either."""
    paths = [*(ROOT / "storage").glob("*.py"), *(ROOT / "scheduler").glob("*.py"), *(ROOT / "bot/core").glob("*.py")]
    found = [line for p in sorted(paths) if p.name != "memos.py" for line in _worded(p)]
    assert found == []
    assert _worded(ROOT / "storage/memos.py")  # the walk sees constants


# Raw-cursor statements (storage/fastsql.py) bypass the ORM's unit of work, so they stay where the
# README credits them with the speed: the ledger's locked path, the member lookup and the inbox.
FASTSQL_ALLOWED = {"storage/ledger/debit.py", "storage/ledger/lots.py", "storage/members.py", "storage/inbox.py"}


def test_raw_cursor_statements_only_where_named() -> None:
    users = {path for path, names in _modules().items() if any(_under(n, ("storage.fastsql",)) for n in names)}
    assert users == FASTSQL_ALLOWED


def test_telemetry_imports_nothing_of_ours() -> None:
    """Every layer logs and counts through it, so it must sit below all of them."""
    assert [n for n in _imports(ROOT / "telemetry.py") if n.split(".")[0] in TOP] == []


def test_the_rules_see_a_violation(tmp_path: Path) -> None:
    """The walk is not blind: a core module importing a handler, a function-level Flask import, or a module
    imported by name from its package, is found."""
    bad = tmp_path / "bad.py"
    bad.write_text("import handlers.award\n\ndef f():\n    from flask import request\n", encoding="utf-8")
    names = _imports(bad)
    assert [n for n in names if _under(n, FORBIDDEN["bot/core"])] == ["handlers.award", "flask", "flask.request"]
    bad.write_text("from storage import fastsql\n", encoding="utf-8")
    assert any(_under(n, ("storage.fastsql",)) for n in _imports(bad))


def test_importing_handlers_registers_nothing() -> None:
    from bot.core.router import Router
    import handlers

    router = Router()
    assert router.routes == []
    handlers.register_all(router)
    assert len(router.routes) > 0
    assert Router().routes == []
