"""The layout's mechanical rules (docs/architecture.md): module sizes, no command-line flags in the
library's error messages, no imports of the CLI from the library, the layers' import directions,
and a light ``dirfind --help``."""

from __future__ import annotations

import ast
import importlib
import os
import re
import subprocess
import sys

import pytest

from helpers import ROOT

SRC = ROOT / "src" / "dirfind"
MODULES = sorted(SRC.rglob("*.py"))
LIBRARY = [p for p in MODULES if p.relative_to(SRC).parts[0] not in ("cli", "__main__.py")]
FLAG = re.compile(r"(^|[\s(/'\"`])--[a-z][a-z-]+|(^|\s)-[kn]\b")

#: package -> packages it may import (besides itself, the standard library and third parties);
#: "top" = the top-level modules (errors, bank, registry, __init__)
LAYERS = {
    "util": {"top"},
    "generators": {"util", "top"},
    "core": {"generators", "util", "top"},
    "methods": {"render", "core", "generators", "util", "top"},
    "render": {"core", "generators", "util", "top"},
    "cli": {"methods", "render", "core", "generators", "util", "top"},
}


def _package(path) -> str:
    parts = path.relative_to(SRC).parts
    return parts[0] if len(parts) > 1 else "top"


def _imports(path) -> set[str]:
    """Packages of dirfind a module imports (resolving relative imports)."""
    here = list(path.relative_to(SRC).with_suffix("").parts)
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level]
                mod = [*base, *(node.module.split(".") if node.module else [])]
                names = [mod + [a.name] for a in node.names] if not node.module else [mod]
            elif node.module and node.module.startswith("dirfind"):
                names = [node.module.split(".")[1:]]
            else:
                continue
        elif isinstance(node, ast.Import):
            names = [a.name.split(".")[1:] for a in node.names if a.name.startswith("dirfind")]
        else:
            continue
        for parts in names:
            parts = [p for p in parts if p != "__init__"]
            if not parts:
                out.add("top")
            elif (SRC / parts[0]).is_dir():
                out.add(parts[0])
            else:
                out.add("top")
    return out


def test_module_sizes():
    big = {str(p.relative_to(SRC)): n for p in MODULES if (n := len(p.read_text().splitlines())) > 500}
    assert not big, f"modules over 500 lines: {big}"
    commands = [p for p in (SRC / "cli").glob("*.py") if not p.name.startswith("_")]
    cli = {p.name: n for p in commands if (n := len(p.read_text().splitlines())) > 200}
    assert not cli, f"command modules over 200 lines: {cli}"


def test_library_errors_name_parameters_not_flags():
    found = []
    for path in LIBRARY:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Raise):
                for c in ast.walk(node):
                    if isinstance(c, ast.Constant) and isinstance(c.value, str) and FLAG.search(c.value):
                        found.append(f"{path.relative_to(SRC)}:{node.lineno}: {c.value[:60]!r}")
    assert not found, "\n".join(found)


def test_layers_import_downwards_only():
    bad = []
    for path in LIBRARY + sorted((SRC / "cli").glob("*.py")):
        pkg = _package(path)
        allowed = LAYERS.get(pkg, {"util", "generators", "core", "methods", "render"}) | {pkg}
        if pkg == "top":  # bank/registry/errors: only util (and each other); lazy imports of generators allowed
            allowed = {"top", "util", "generators"}
        for dep in _imports(path) - allowed:
            bad.append(f"{path.relative_to(SRC)} imports {dep}")
    assert not bad, "\n".join(bad)


def test_library_never_imports_the_cli():
    assert not [str(p.relative_to(SRC)) for p in LIBRARY if "cli" in _imports(p)]


def test_help_needs_no_torch_and_its_command_list_is_true():
    code = "import sys; from dirfind.cli import main; main(['--help']); print('torch' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": str(SRC.parent)}
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("False"), out
    from dirfind.cli import COMMANDS, cli

    for name, (module, attr, summary) in COMMANDS.items():
        cmd = getattr(importlib.import_module(f"dirfind.cli.{module}"), attr)
        assert cmd.name == name and (cmd.help or "").split("\n\n")[0].replace("\n", " ").strip() == summary
    assert sorted(cli.list_commands(None)) == sorted(COMMANDS)


@pytest.mark.parametrize(
    "module",
    [
        "sefa",
        "ganspace",
        "jacobian",
        "learn",
        "interfacegan",
        "traverse",
        "sample",
        "evaluate",
        "label",
        "compare",
        "report",
    ],
)
def test_cli_defaults_come_from_the_options_dataclasses(module):
    """Every option a command builds from an options dataclass shows that dataclass's default."""
    import dataclasses

    import click

    from dirfind.cli import COMMANDS
    from dirfind.util.options import describe

    sources = {
        "sefa": "dirfind.methods.sefa:SefaOptions",
        "ganspace": "dirfind.methods.ganspace:GanspaceOptions",
        "jacobian": "dirfind.methods.jacobian:JacobianOptions",
        "learn": "dirfind.methods.learn:HessianOptions",
        "interfacegan": "dirfind.methods.interfacegan.fit:FitOptions",
        "traverse": "dirfind.render.traverse:TraverseOptions",
        "sample": "dirfind.core.samplefile:SampleOptions",
        "evaluate": "dirfind.methods.interpret.evaluate:EvaluateOptions",
        "label": "dirfind.methods.interpret.label:LabelOptions",
        "compare": "dirfind.methods.interpret.compare:CompareOptions",
        "report": "dirfind.render.report:ReportOptions",
    }
    mod, cls_name = sources[module].split(":")
    cls = getattr(importlib.import_module(mod), cls_name)
    names = {f.name for f in dataclasses.fields(cls)}
    cmds = [getattr(importlib.import_module(f"dirfind.cli.{m}"), a) for m, a, _ in COMMANDS.values() if m == module]
    checked = 0
    for cmd in cmds:
        for p in cmd.params:
            if isinstance(p, click.Option) and p.name in names and p.name not in ("layers", "seed"):
                default, _ = describe(cls, p.name)
                assert p.default == default, (cmd.name, p.name, p.default, default)
                checked += 1
    assert checked >= 1


def test_methods_import_lazily_and_submodules_do_not_shadow_functions():
    """``dirfind.methods`` loads a method's module on first use (SeFa must not pay for scipy), and
    importing ``dirfind.methods.sefa`` first still leaves ``dirfind.methods.sefa`` the function."""
    code = (
        "import sys, types, dirfind.methods.sefa\n"
        "from dirfind.methods import sefa, ganspace\n"
        "import dirfind.methods.learn\n"
        "from dirfind.methods import learn\n"
        "assert isinstance(sefa, types.FunctionType) and isinstance(learn, types.FunctionType), (sefa, learn)\n"
        "assert sefa.__module__ == 'dirfind.methods.sefa'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    lean = "import sys, dirfind.methods.sefa; assert 'dirfind.methods.ganspace' not in sys.modules"
    subprocess.run([sys.executable, "-c", lean], check=True, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
