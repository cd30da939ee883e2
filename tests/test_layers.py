"""Imports flow down: an app imports only the apps below it and the shared packages under
all of them, never the project package `springhook`, which wires the apps together.

    portal      → deliveries, changes, webhooks, apikeys
    catalog     → changes, apikeys
    deliveries  → changes, webhooks, apikeys
    changes     → webhooks
    apikeys     → webhooks
    webhooks    → (no app)
    core        → (no app, not springhook): what every app shares

Read from the source with `ast`, so that an import inside a function counts too.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "springhook"

# Packages below every app: any app may import them, and they import no app nor the
# project package. A new shared package (or a new app below the others) goes here.
SHARED = {"core", "adminpolicy"}

# The project's apps and the apps each may import, besides itself and SHARED. A new app
# goes here, with the apps below it that it may import.
APPS = {
    # The partner portal: pages over the services of the apps below it.
    "portal": {"deliveries", "changes", "webhooks", "apikeys"},
    "catalog": {"changes", "apikeys"},
    "deliveries": {"changes", "webhooks", "apikeys"},
    "changes": {"webhooks"},
    # API keys, which may belong to webhooks, and the JSON plumbing the APIs share.
    "apikeys": {"webhooks"},
    "webhooks": set(),
}

# Modules that break the rule, with what they import. An entry here is an exception to
# remove, never one to add.
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()


def project_packages() -> set[str]:
    """Top-level packages of the repository (folders with an __init__.py)."""
    return {
        path.parent.name for path in ROOT.glob("*/__init__.py")
        if path.parent.name not in {"tests"}
    }


def imported_packages(path: Path) -> set[str]:
    """The top-level packages a module imports (relative imports are its own package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    packages = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            packages.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            packages.add(node.module.split(".")[0])
    return packages


def modules_of(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def forbidden_imports(package: str, allowed: set[str]) -> list[str]:
    """`path imports name` for every project package that `package` may not import."""
    others = project_packages() - {package} - allowed
    found = []
    for path in modules_of(package):
        relative = path.relative_to(ROOT).as_posix()
        for name in sorted(imported_packages(path) & others):
            if (relative, name) not in KNOWN_EXCEPTIONS:
                found.append(f"{relative} imports {name}")
    return found


@pytest.mark.parametrize("app", sorted(APPS))
def test_an_app_imports_only_the_apps_below_it_and_never_the_project(app):
    if not (ROOT / app).is_dir():
        pytest.skip(f"{app} is not in this checkout")
    assert forbidden_imports(app, APPS[app] | SHARED) == [], (
        f"{app} may import {sorted(APPS[app] | SHARED)} of the project's packages, "
        f"never {PROJECT}: move what apps share into a shared package (core)"
    )


@pytest.mark.parametrize("package", sorted(SHARED))
def test_a_shared_package_imports_no_app_and_not_the_project(package):
    if not (ROOT / package).is_dir():
        pytest.skip(f"{package} is not in this checkout")
    assert forbidden_imports(package, SHARED - {package}) == []


def test_every_project_package_is_placed_in_a_layer():
    # A new top-level package must be placed: an app (in APPS), shared (in SHARED), or
    # one of the packages above the apps. Otherwise nothing here would check it.
    above_the_apps = {PROJECT, "bench", "examples"}
    unplaced = project_packages() - set(APPS) - SHARED - above_the_apps
    assert unplaced == set(), f"place {sorted(unplaced)} in APPS or SHARED of this test"


def test_the_known_exceptions_are_still_real():
    # Once a module imports from core, its entry goes, so the list only ever shrinks.
    stale = [
        f"{path} no longer imports {name}"
        for path, name in sorted(KNOWN_EXCEPTIONS)
        if not (ROOT / path).exists() or name not in imported_packages(ROOT / path)
    ]
    assert stale == [], "remove these from KNOWN_EXCEPTIONS: " + "; ".join(stale)


def test_the_checker_sees_every_kind_of_import(tmp_path):
    module = tmp_path / "module.py"
    module.write_text(
        "import springhook.logfmt\n"
        "from catalog.models import Training\n"
        "from . import sibling\n"
        "def later():\n"
        "    from deliveries import services\n"
    )
    assert imported_packages(module) == {"springhook", "catalog", "deliveries"}


def test_the_image_copies_every_package_the_apps_import():
    copied = set()
    dockerfile = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    for line in dockerfile.splitlines():
        if line.startswith("COPY "):
            *sources, _destination = line.split()[1:]
            copied.update(source.rstrip("/") for source in sources)
    needed = set()
    for app in APPS:
        for path in modules_of(app):
            needed |= imported_packages(path) & project_packages()
    assert needed - copied == set(), "the Dockerfile must COPY these packages"


def test_tests_never_import_the_bench():
    """What tests and the bench share (the fast partner, the Celery cluster) lives in
    tests/support; only the bench's own tests (tests/bench) import it."""
    found = [
        path.relative_to(ROOT).as_posix()
        for path in sorted((ROOT / "tests").rglob("*.py"))
        if "bench" in imported_packages(path) and path.parent.name != "bench"
    ]
    assert found == []
