"""The reasons behind the code are in the repository: every document a comment cites is in docs/, by a
section that exists, and nothing points at a path outside the repository."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ("architecture", "protocols", "reliability", "commands", "operations")
OUTSIDE = re.compile(r"\.\./shared|/work/(?:shared|main)|shared/(?:protocols|reliability|architecture|interfaces)\.md")
BARE = re.compile(r"(?<![\w/.-])(architecture|protocols|reliability|interfaces|commands|operations)\.md")
SECTION = re.compile(r"docs/(reliability|architecture)\.md`? §(\d+(?:\.\d+)*)")
PROTOCOL_IDS = re.compile(r"docs/protocols\.md`?((?:[ ,/]*(?:and )?§?(?:[AB]\.\d+(?:\.\d+)?|Part C))+)")


def tracked_text() -> dict[str, str]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    out = {}
    for name in names:
        if name.endswith((".png", ".jpg", ".ico", ".woff", ".woff2")):
            continue
        try:
            out[name] = (ROOT / name).read_text(encoding="utf-8")
        except (UnicodeDecodeError, FileNotFoundError):
            continue
    return out


def headings(doc: str) -> list[str]:
    return [line.lstrip("#").strip() for line in (ROOT / "docs" / f"{doc}.md").read_text(encoding="utf-8").splitlines()
            if line.startswith("#")]


def test_no_path_outside_the_repository() -> None:
    hits = [f"{name}: {m.group(0)}" for name, text in tracked_text().items() if name != "tests/test_docs.py"
            for m in OUTSIDE.finditer(text)]
    assert hits == []


def test_code_cites_only_the_documents_in_docs() -> None:
    assert all((ROOT / "docs" / f"{doc}.md").exists() for doc in DOCS)
    bare = [f"{name}: {m.group(0)}" for name, text in tracked_text().items()
            if name.endswith(".py") and name != "tests/test_docs.py" for m in BARE.finditer(text)]
    assert bare == []


def test_cited_sections_exist() -> None:
    missing = []
    for name, text in tracked_text().items():
        if not name.endswith(".py") or name == "tests/test_docs.py":
            continue
        for doc, number in SECTION.findall(text):
            if not any(h == number or h.startswith((number + " ", number + ".")) for h in headings(doc)):
                missing.append(f"{name}: docs/{doc}.md §{number}")
        for ids in PROTOCOL_IDS.findall(text):
            for sid in re.findall(r"[AB]\.\d+(?:\.\d+)?|Part C", ids):
                if not any(h == sid or h.startswith(sid + " ") for h in headings("protocols")):
                    missing.append(f"{name}: docs/protocols.md {sid}")
    assert missing == []
