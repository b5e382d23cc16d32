"""The evaluation harness depends on production one way, and ``eval``'s command line
starts without the harness (the other layers: the import-linter contracts in
pyproject.toml, run by ``make lint``)."""

import ast
from pathlib import Path

import streamguard

PACKAGE = Path(streamguard.__file__).parent
EVALUATION = "streamguard.evaluation"


def imports(path: Path, *, top_level_only: bool = False) -> set[str]:
    """The modules ``path`` imports (``from a import b`` gives a and a.b)."""
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    names = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)


def test_production_never_imports_the_evaluation_harness():
    offenders = {
        module_name(path): sorted(n for n in imports(path) if n.startswith(EVALUATION))
        for path in PACKAGE.rglob("*.py")
        if not module_name(path).startswith((EVALUATION, "streamguard.cli."))
    }
    assert not {name: found for name, found in offenders.items() if found}


def test_the_command_line_imports_the_evaluation_only_when_it_runs():
    commands = PACKAGE / "cli" / "eval_cmd.py"
    at_start = {n for n in imports(commands, top_level_only=True) if n.startswith(EVALUATION)}
    assert at_start and all(n.startswith(f"{EVALUATION}.options") for n in at_start)
    for path in (PACKAGE / "evaluation").glob("*.py"):
        assert "streamguard.cli" not in {n.rsplit(".", 1)[0] for n in imports(path)}, path.name
