"""The helpers package stays small and easy to read: no import circles, a docstring per module."""

import ast
from pathlib import Path

HELPERS = Path(__file__).resolve().parent.parent / "helpers"


def helper_imports():
    """{module: the helpers modules it imports}, read from the source."""
    graph = {}
    for path in sorted(HELPERS.glob("*.py")):
        if path.name == "__init__.py":
            continue
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("helpers."):
                names.add(node.module.split(".")[1])
            elif isinstance(node, ast.Import):
                names |= {a.name.split(".")[1] for a in node.names
                          if a.name.startswith("helpers.")}
        graph[path.stem] = names
    return graph


def test_no_helper_module_imports_itself_through_others():
    graph = helper_imports()
    assert len(graph) >= 5

    def reaches(start, target, seen=()):
        return any(n == target or (n not in seen and reaches(n, target, (*seen, n)))
                   for n in graph.get(start, ()))

    circles = [name for name in graph if reaches(name, name)]
    assert not circles, f"import circle through {circles}: {graph}"


def test_every_helper_module_says_what_it_is_for():
    for path in HELPERS.glob("*.py"):
        doc = ast.get_docstring(ast.parse(path.read_text()))
        assert doc and len(doc.split()) >= 5, f"{path.name} has no docstring"
