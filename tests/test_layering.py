"""The core stays free of the edge (docs/architecture.md §1.2), checked by walking the imports."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = {
    "handlers": ("flask", "requests", "bot.wecom", "bot.dingtalk", "bot.web", "bot.delivery"),
    "cards": ("flask", "requests", "bot", "storage", "handlers"),
    "storage": ("flask", "requests", "bot", "cards", "handlers"),
}


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_the_edge(package: str) -> None:
    files = list((ROOT / package).rglob("*.py"))
    assert files, f"{package}/ has no modules"
    bad = [f"{f.relative_to(ROOT)} imports {name}" for f in files for name in _imports(f)
           if any(name == p or name.startswith(p + ".") for p in FORBIDDEN[package])]
    assert bad == []


def test_importing_handlers_registers_nothing() -> None:
    from bot.core.router import Router
    import handlers

    router = Router()
    assert router.routes == []
    handlers.register_all(router)
    assert len(router.routes) > 0
    assert Router().routes == []
