"""The house rule: every module under lavis/ imports only from its own layer or the ones below.

The layers, lowest first (the one place they are written down):

    common < processors < models < datasets, tasks < runners < lavis/__init__ (registers all of
    the above) < chat, serve, run_builder (the application) < tools

A function-level import of a lavis module is allowed only where it breaks a real cycle or defers
a heavy optional dependency, and then the comment just above it says which (`cycle:`/`defer:`).
"""

import ast
import pathlib

import pytest

import lavis

LAYERS = [
    {"common"},
    {"processors"},
    {"models"},
    {"datasets", "tasks"},
    {"runners"},
    {""},  # lavis/__init__.py: importing it registers every component below
    {"chat", "serve", "run_builder"},
    {"tools"},
]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}
PACKAGE = pathlib.Path(lavis.__file__).parent
MODULES = sorted(PACKAGE.rglob("*.py"))


def room(module):
    """'lavis.models.llm.x' -> 'models'; 'lavis' -> ''."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def module_name(path, package=PACKAGE):
    parts = list(path.relative_to(package.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def lavis_imports(tree, own):
    """(line, imported lavis module, at module level?) for each import of a lavis module."""
    top = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names if a.name == "lavis" or a.name.startswith("lavis.")]
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{own}: a relative import (the house uses absolute ones)"
            base = node.module or ""
            if base != "lavis" and not base.startswith("lavis."):
                continue
            # `from lavis import chat` imports lavis.chat; `from lavis.x import y` imports lavis.x
            names = [f"{base}.{a.name}" for a in node.names] if base == "lavis" else [base]
        else:
            continue
        found += [(node.lineno, name, id(node) in top) for name in names]
    return found


def upward_imports(path, package=PACKAGE):
    """['file:line imports X (layer) from layer Y'] for each import that goes up."""
    own = module_name(path, package)
    level = LEVEL[room(own)]
    wrong = []
    for line, name, _ in lavis_imports(ast.parse(path.read_text(encoding="utf-8")), own):
        target = room(name)
        if LEVEL.get(target, -1) > level:
            where = path.relative_to(package.parent)
            wrong.append(f"{where}:{line} imports {name} ({target}) from {room(own) or 'lavis'}")
    return wrong


def test_every_room_has_a_layer():
    rooms = {room(module_name(p)) for p in MODULES}
    assert rooms - set(LEVEL) == set(), "a new top-level module of lavis: give it a layer in LAYERS"


def test_no_module_imports_from_a_layer_above_its_own():
    wrong = [line for path in MODULES for line in upward_imports(path)]
    assert wrong == []


def test_function_level_imports_of_lavis_say_why():
    unexplained = []
    for path in MODULES:
        lines = path.read_text(encoding="utf-8").splitlines()
        for line, name, at_top in lavis_imports(ast.parse("\n".join(lines)), module_name(path)):
            comment = " ".join(lines[max(0, line - 4) : line - 1])
            if not at_top and "cycle:" not in comment and "defer:" not in comment:
                unexplained.append(f"{path.relative_to(PACKAGE.parent)}:{line} {name}")
    assert unexplained == []


@pytest.mark.parametrize(
    "source, own, expected",
    [
        ("from lavis.models import load_model\n", "lavis.common.x", ["models"]),
        ("from lavis import chat\n", "lavis.runners.x", ["chat"]),
        ("import lavis.tools.merge_lora\n", "lavis.chat.x", ["tools"]),
        ("def f():\n    from lavis.runners import samplers\n", "lavis.datasets.x", ["runners"]),
        ("from lavis.common import utils\nfrom lavis.processors import transforms\n", "lavis.models.x", []),
        ("from lavis.tasks import setup_task\n", "lavis.datasets.x", []),  # the same layer
    ],
)
def test_the_check_finds_an_upward_import(tmp_path, source, own, expected):
    """What the check above says of a module `own` (written to a copy of the package) holding `source`."""
    path = tmp_path.joinpath(*own.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True)
    path.write_text(source, encoding="utf-8")
    assert [line.split(" (")[1].split(")")[0] for line in upward_imports(path, tmp_path / "lavis")] == expected
