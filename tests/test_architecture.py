"""The import direction between service/'s packages (docs/architecture.md, "Layers"), the
database seam, and the length of service/'s modules.

Nothing is imported: the source is parsed with :mod:`ast`. Every import that runs is counted,
including imports inside functions; only imports under ``if TYPE_CHECKING:`` are left out, since
they never run. Each top-level package or module of ``service`` is one node, except the
domains' ``models.py`` modules of database tables: together they are the node ``tables`` (one
schema whose foreign keys cross domains, below every domain's code).
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

SERVICE = Path(__file__).resolve().parent.parent / "service"

#: Lowest first. A node imports only from lower layers, or from its own layer if that layer is
#: in PEER_LAYERS (the core modules use each other). Mirrored in docs/architecture.md.
LAYERS: list[set[str]] = [
    # core: no domain knowledge, imported by everything
    {
        "service",  # service/__init__.py: __version__
        "errors",
        "config",
        "crypto",
        "db",
        "dialect",
        "http_headers",
        "leases",
        "logging",
        "migrate",
        "pagination",
        "problems",
        "schemas",
        "throttle",
        "openapi",
        "metrics",
        "webhook_http",
    },
    {"convert"},
    {"peloton"},
    {"tables"},  # every domain's models.py of database tables
    {"budget"},  # the Peloton request budget the runtime holds (service/budget/)
    {"runtime"},
    {"deps"},
    {"auth"},
    {"files"},
    {"destinations"},
    {"events"},  # operational events: emitted by deliveries and accounts, sent to webhooks
    {"deliveries"},
    {"workouts"},
    {"accounts"},
    {"ops"},
    {"web"},
    {"api", "scheduler"},
    {"app"},
    {"models", "commands"},
    {"cli"},
]

#: Layers whose members may import each other (as long as no cycle forms).
PEER_LAYERS = {0}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SERVICE.parent).with_suffix("").parts
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _defines_tables(path: Path) -> bool:
    """Whether the module declares database tables (imports ``Base`` from ``service.db``)."""
    return any(
        isinstance(node, ast.ImportFrom)
        and node.module == "service.db"
        and any(alias.name == "Base" for alias in node.names)
        for node in ast.parse(path.read_text(encoding="utf-8")).body
    )


TABLE_MODULES = frozenset(
    _module_name(path) for path in SERVICE.glob("*/models.py") if _defines_tables(path)
)


def _node(module: str) -> str:
    """``service.accounts.jobs`` -> ``accounts``; ``service`` -> ``service``;
    ``service.accounts.models`` -> ``tables``."""
    if module in TABLE_MODULES:
        return "tables"
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


class _Imports(ast.NodeVisitor):
    def __init__(self, module: str, is_package: bool) -> None:
        self.module = module
        self.is_package = is_package
        self.found: set[str] = set()

    def visit_If(self, node: ast.If) -> None:
        if _is_type_checking(node.test):
            for statement in node.orelse:
                self.visit(statement)
            return
        self.generic_visit(node)

    def visit_Import(self, node: ast.Import) -> None:
        self.found.update(a.name for a in node.names if a.name.split(".")[0] == "service")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level:
            base = self.module.split(".")
            if not self.is_package:
                base = base[:-1]
            base = base[: len(base) - (node.level - 1)]
            target = ".".join([*base, *([node.module] if node.module else [])])
        else:
            target = node.module or ""
        if target.split(".")[0] != "service":
            return
        if target == "service":
            # ``from service import x``: x is a submodule or a name of service/__init__.py.
            for alias in node.names:
                sub = SERVICE / alias.name
                is_module = sub.is_dir() or sub.with_suffix(".py").is_file()
                self.found.add(f"service.{alias.name}" if is_module else "service")
        else:
            self.found.add(target)


def import_edges() -> set[tuple[str, str]]:
    """Every run-time import inside service/ as (importer module, imported module)."""
    edges: set[tuple[str, str]] = set()
    for path in sorted(SERVICE.rglob("*.py")):
        module = _module_name(path)
        visitor = _Imports(module, path.name == "__init__.py")
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=str(path)))
        edges.update((module, target) for target in visitor.found)
    return edges


def _layer_of() -> dict[str, int]:
    return {node: i for i, layer in enumerate(LAYERS) for node in layer}


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path that ends where it starts, or None."""
    done: set[str] = set()
    for start in sorted(graph):
        if start in done:
            continue
        path: list[str] = []
        on_path: set[str] = set()
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph.get(start, ())))]
        path.append(start)
        on_path.add(start)
        while stack:
            node, pending = stack[-1]
            if not pending:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
                continue
            nxt = pending.pop(0)
            if nxt in on_path:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in done:
                stack.append((nxt, sorted(graph.get(nxt, ()))))
                path.append(nxt)
                on_path.add(nxt)
    return None


def _node_graph(edges: set[tuple[str, str]]) -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for importer, imported in edges:
        a, b = _node(importer), _node(imported)
        if a != b:
            graph[a].add(b)
    return graph


def test_every_node_of_service_has_a_layer() -> None:
    nodes = {_node(_module_name(path)) for path in SERVICE.rglob("*.py")}
    assert nodes - _layer_of().keys() == set(), "add the new package or module to LAYERS"


def test_imports_follow_the_layer_order() -> None:
    layer = _layer_of()
    wrong = sorted(
        f"{importer} -> {imported}"
        for importer, imported in import_edges()
        if _node(importer) != _node(imported)
        and (
            layer[_node(importer)] < layer[_node(imported)]
            or (
                layer[_node(importer)] == layer[_node(imported)]
                and layer[_node(importer)] not in PEER_LAYERS
            )
        )
    )
    assert wrong == [], "imports against the layer order (docs/architecture.md):\n" + "\n".join(
        wrong
    )


def test_no_import_cycle_between_packages() -> None:
    cycle = _find_cycle(_node_graph(import_edges()))
    assert cycle is None, "run-time import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_finder_names_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _find_cycle(graph) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None


def test_type_checking_and_function_local_imports() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from service.accounts import models\n"
        "def f():\n    from service.deliveries import service\n"
        "from . import sibling\n"
    )
    visitor = _Imports("service.workouts.router", is_package=False)
    visitor.visit(ast.parse(source))
    assert visitor.found == {"service.deliveries", "service.workouts"}


def _performance_places() -> list[tuple[str, str]]:
    """(file, name) of every row of docs/architecture.md's "Performance machinery" table."""
    doc = (SERVICE.parent / "docs" / "architecture.md").read_text(encoding="utf-8")
    section = doc.split("## Performance machinery", 1)[1].split("\n## ", 1)[0]
    places = []
    for line in section.splitlines():
        if not line.startswith("| `service/"):
            continue
        place = line.split("|")[1]
        # "`a.py` `x`, `y`, `b.py` `z`": each name belongs to the file named before it.
        current = ""
        for token in re.findall(r"`([^`]+)`", place):
            if token.endswith(".py"):
                current = token
            else:
                places.append((current, token))
    return places


def test_every_performance_machinery_place_says_what_it_buys() -> None:
    places = _performance_places()
    assert len(places) >= 10
    for path, name in places:
        source = (SERVICE.parent / path).read_text(encoding="utf-8")
        at = re.search(
            rf"^\s*(?:async def|def|class) {re.escape(name)}\b|^{re.escape(name)} =", source, re.M
        )
        assert at is not None, f"{path} defines no {name}"
        # The comment sits just above the definition, or in its docstring.
        around = source[max(0, at.start() - 400) : at.end() + 600]
        assert "Performance machinery" in around or "performance machinery" in around, (
            f"{path} {name}: no 'Performance machinery' comment naming its benchmark"
        )


#: The database seam (docs/architecture.md, "The database seam"): the one module of service/
#: that tells SQLite and PostgreSQL apart.
SEAM = SERVICE / "dialect.py"


def dialect_reads(source: str) -> list[str]:
    """Where ``source`` tells databases apart by itself: reads a dialect's ``name`` or
    ``driver`` (``engine.dialect.name``, ``dialect.driver``), or imports
    ``sqlalchemy.dialects``. As ``line: what``."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr in ("name", "driver")
            and (
                (isinstance(node.value, ast.Attribute) and node.value.attr == "dialect")
                or (isinstance(node.value, ast.Name) and node.value.id == "dialect")
            )
        ):
            found.append(f"{node.lineno}: dialect.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
            "sqlalchemy.dialects"
        ):
            found.append(f"{node.lineno}: from {node.module} import")
        elif isinstance(node, ast.Import):
            found.extend(
                f"{node.lineno}: import {alias.name}"
                for alias in node.names
                if alias.name.startswith("sqlalchemy.dialects")
            )
    return found


def test_only_the_database_seam_tells_databases_apart() -> None:
    wrong = [
        f"{path.relative_to(SERVICE.parent)}:{where}"
        for path in sorted(SERVICE.rglob("*.py"))
        if path != SEAM
        for where in dialect_reads(path.read_text(encoding="utf-8"))
    ]
    assert wrong == [], "ask service/dialect.py (the database seam) instead:\n" + "\n".join(wrong)
    assert dialect_reads(SEAM.read_text(encoding="utf-8")), "the seam moved: update SEAM"


def test_the_seam_check_finds_each_kind_of_read() -> None:
    source = (
        "from sqlalchemy.dialects.postgresql import insert\n"
        "import sqlalchemy.dialects.sqlite\n"
        "if session.get_bind().dialect.name == 'postgresql':\n    pass\n"
        "def f(dialect):\n    return dialect.driver\n"
        "engine.dialect.do_ping(connection)\n"
    )
    assert dialect_reads(source) == [
        "1: from sqlalchemy.dialects.postgresql import",
        "2: import sqlalchemy.dialects.sqlite",
        "3: dialect.name",
        "6: dialect.driver",
    ]


#: The style guide's hard limit (docs/architecture.md): a module past it is split by use case.
MAX_MODULE_LINES = 800


def long_modules(root: Path, limit: int = MAX_MODULE_LINES) -> dict[str, int]:
    """The modules under ``root`` longer than ``limit`` lines, with their lengths."""
    lengths = {
        str(path.relative_to(root.parent)): len(path.read_text(encoding="utf-8").splitlines())
        for path in sorted(root.rglob("*.py"))
    }
    return {name: lines for name, lines in lengths.items() if lines > limit}


def test_no_module_of_service_is_over_the_hard_length_limit() -> None:
    too_long = long_modules(SERVICE)
    assert too_long == {}, f"split these by use case (at most {MAX_MODULE_LINES} lines): {too_long}"


def test_the_length_check_finds_a_long_module(tmp_path: Path) -> None:
    package = tmp_path / "service"
    (package / "big").mkdir(parents=True)
    (package / "big" / "module.py").write_text("x = 1\n" * 801, encoding="utf-8")
    (package / "small.py").write_text("x = 1\n" * 800, encoding="utf-8")
    assert long_modules(package) == {"service/big/module.py": 801}
