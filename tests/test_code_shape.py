"""Shape rules ruff and mypy cannot express: function length and the test kit's boundary."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_FUNCTION_LINES = 80
# Alembic migrations are generated, append-only history: their length is not design.
SKIPPED = ("storage/migrations",)
# Only the kit itself and the CLI (which starts the sandbox and the demo) may use it.
MAY_IMPORT_TESTING = ("testing", "cli")
_TESTING_IMPORT = re.compile(
    r"^\s*(?:from\s+ivr\.testing\b|import\s+ivr\.testing\b|from\s+ivr\s+import\s+.*\btesting\b)",
    re.MULTILINE,
)


def _sources(package: Path, skip: tuple[str, ...] = SKIPPED) -> list[Path]:
    return sorted(
        p for p in package.rglob("*.py")
        if not any(p.relative_to(package).as_posix().startswith(s + "/") for s in skip)
    )


def long_functions(package: Path, limit: int = MAX_FUNCTION_LINES) -> list[str]:
    """``path:line name (n lines)`` for every function over ``limit`` lines.

    Nested functions count towards their parent (a route factory with its routes
    inside is one long function), so only outermost functions and methods are measured.
    """
    found: list[tuple[str, int, str]] = []
    for path in _sources(package):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        stack: list[ast.AST] = [tree]
        while stack:
            node = stack.pop()
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    lines = (child.end_lineno or child.lineno) - child.lineno + 1
                    if lines > limit:
                        rel = path.relative_to(package.parent).as_posix()
                        found.append((rel, child.lineno, f"{child.name} ({lines} lines)"))
                else:
                    stack.append(child)
    return [f"{rel}:{line} {what}" for rel, line, what in sorted(found)]


def imports_of_the_kit(package: Path) -> list[str]:
    """``path:line`` of every import of ``ivr.testing`` outside the allowed subpackages."""
    found: list[str] = []
    for path in _sources(package, skip=MAY_IMPORT_TESTING):
        text = path.read_text(encoding="utf-8")
        for m in _TESTING_IMPORT.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            found.append(f"{path.relative_to(package.parent).as_posix()}:{line}")
    return found


def test_no_function_longer_than_80_lines() -> None:
    """No function in ivr/ (nested functions included in their parent) exceeds 80 lines."""
    too_long = long_functions(ROOT / "ivr")
    assert not too_long, "split these into named helpers:\n" + "\n".join(too_long)


def test_production_code_does_not_import_the_testing_kit() -> None:
    """Only ivr/testing/ and ivr/cli/ import ivr.testing; the app never depends on fakes."""
    imports = imports_of_the_kit(ROOT / "ivr")
    assert not imports, "ivr.testing imported from production code:\n" + "\n".join(imports)


def test_the_shape_checks_catch_violations(tmp_path: Path) -> None:
    """Both checks report a planted long function and a planted kit import."""
    pkg = tmp_path / "ivr"
    (pkg / "domain").mkdir(parents=True)
    (pkg / "testing").mkdir()
    (pkg / "storage" / "migrations").mkdir(parents=True)
    body = "".join(f"        x = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (pkg / "domain" / "long.py").write_text(
        "import os\nfrom ivr.testing.fakes import FakeChannel\n\n"
        f"class C:\n    def method(self) -> None:\n{body}\n\n"
        f"def outer() -> None:\n    def inner() -> None:\n{body}"
    )
    (pkg / "testing" / "kit.py").write_text("import ivr.testing.fakes\n")
    (pkg / "storage" / "migrations" / "m.py").write_text(f"def up() -> None:\n{body}")
    (pkg / "domain" / "ok.py").write_text("def short() -> None:\n    pass\n")
    assert long_functions(pkg) == [
        "ivr/domain/long.py:5 method (81 lines)",
        "ivr/domain/long.py:88 outer (82 lines)",
    ]
    assert imports_of_the_kit(pkg) == ["ivr/domain/long.py:2"]
