"""The layout's rules, checked on the source: what each package may import, no circles, no private names
across modules, modules under 300 lines (the CLI under 450), one image reader. docs/architecture.md."""

import ast
from pathlib import Path

import pytest

from espcn_lab.paths import REPO_ROOT

PACKAGES = ("espcn_lab", "data_prep")
CORE = {"espcn_lab", "espcn_lab.errors", "espcn_lab.config", "espcn_lab.model", "espcn_lab.checkpoint", "espcn_lab.paths",
        "espcn_lab.files"}
# package -> project modules it may import (prefixes); third-party modules it must not
ALLOWED = {
    "espcn_lab.imaging": ({"espcn_lab.errors", "espcn_lab.imaging"}, {"lightning", "webdataset"}),
    "espcn_lab.shards": ({"espcn_lab.errors", "espcn_lab.imaging", "espcn_lab.shards"}, {"torch", "lightning"}),
    "espcn_lab.deploy": (CORE | {"espcn_lab.imaging", "espcn_lab.deploy"}, {"lightning"}),
    "espcn_lab.evaluate": (CORE | {"espcn_lab.imaging", "espcn_lab.shards", "espcn_lab.deploy", "espcn_lab.evaluate"},
                           {"lightning"}),
    "espcn_lab.sweep": ({"espcn_lab", "espcn_lab.errors", "espcn_lab.config", "espcn_lab.sweep"}, {"lightning", "torch"}),
    "espcn_lab.model": ({"espcn_lab.errors"}, {"lightning"}),
    "espcn_lab.config": ({"espcn_lab.errors", "espcn_lab.model", "espcn_lab.config"}, {"lightning", "torch"}),
    "data_prep": ({"data_prep", "espcn_lab", "espcn_lab.errors", "espcn_lab.files", "espcn_lab.imaging", "espcn_lab.shards"},
                  {"lightning", "torch"}),
}


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for f in (REPO_ROOT / pkg).rglob("*.py"):
            mods[".".join(f.relative_to(REPO_ROOT).with_suffix("").parts).removesuffix(".__init__")] = f
    return mods


def _imports(name: str, path: Path) -> list[tuple[str, str | None]]:
    """(imported module, imported name or None) of every import statement, lazy ones included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out += [(a.name, None) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out += [(node.module, a.name) for a in node.names]
    return out


MODULES = _modules()


def _rule(name: str):
    for prefix in sorted(ALLOWED, key=len, reverse=True):
        if name == prefix or name.startswith(prefix + "."):
            return ALLOWED[prefix]
    return None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_each_module_imports_only_what_its_package_may(name):
    rule = _rule(name)
    if rule is None:
        return
    allowed, forbidden = rule
    for module, imported in _imports(name, MODULES[name]):
        top = module.split(".")[0]
        assert top not in forbidden, f"{name} imports {module}"
        if top in PACKAGES:
            full = f"{module}.{imported}" if imported and f"{module}.{imported}" in MODULES else module
            assert any(full == a or full.startswith(a + ".") for a in allowed) or full in allowed, f"{name} imports {full}"


def test_lightning_is_imported_only_by_train():
    users = {n for n, p in MODULES.items() if any(m.split(".")[0] == "lightning" for m, _ in _imports(n, p))}
    assert users and all(n.startswith("espcn_lab.train.") for n in users), users


def test_no_import_circles_and_no_private_names_across_modules():
    graph = {n: {m if m in MODULES else f"{m}.{i}" for m, i in _imports(n, p) if m.split(".")[0] in PACKAGES}
             for n, p in MODULES.items()}
    graph = {n: {m for m in deps if m in MODULES and m != n and not n.startswith(m + ".")} for n, deps in graph.items()}
    state: dict[str, int] = {}

    def visit(n, path):
        state[n] = 1
        for m in graph[n]:
            assert state.get(m) != 1, " -> ".join(path + [m])
            if not state.get(m):
                visit(m, path + [m])
        state[n] = 2

    for n in graph:
        if not state.get(n):
            visit(n, [n])
    private = [(n, i) for n, p in MODULES.items() for m, i in _imports(n, p)
               if m.split(".")[0] in PACKAGES and i and i.startswith("_") and not i.startswith("__") and m != n]
    assert not private, private


def test_modules_stay_small_and_images_are_opened_in_one_place():
    sizes = {n: p.read_text().count("\n") for n, p in MODULES.items()}
    big = {n: s for n, s in sizes.items() if s > (450 if n.endswith(".cli") else 300)}
    assert not big, big
    openers = [n for n, p in MODULES.items() if "Image.open(" in p.read_text()]
    assert openers == ["espcn_lab.imaging.read"], openers


def test_the_config_package_is_imported_by_its_name_alone():
    inside = [(n, m) for n, p in MODULES.items() if not n.startswith("espcn_lab.config")
              for m, _ in _imports(n, p) if m.startswith("espcn_lab.config.")]
    assert not inside, inside
