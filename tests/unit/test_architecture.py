"""The dependency rule, read from the source: domain is pure, api is imported by nobody, settings alone reads the environment."""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LAYERS = ("domain", "adapters", "projections", "api")
DOMAIN_MAY_IMPORT = {
    "msgspec",
    "eventsourcing.domain",
    "eventsourcing.application",
    "eventsourcing.utils",
    "eventsourcing.persistence",
}
ENVIRONMENT_READERS = {"environ", "environb", "getenv", "getenvb"}
SETTINGS_MODULE = "api.settings"


@dataclass(frozen=True)
class Import:
    module: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line} imports {self.module}"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_of(path: Path) -> str:
    name = module_name(path)
    return name if path.name == "__init__.py" else name.rpartition(".")[0]


def imports_in(source: str, path: Path) -> list[Import]:
    """Every module an import statement names, anywhere in the file (functions and TYPE_CHECKING blocks too)."""
    found = []
    for node in ast.walk(ast.parse(source, filename=str(path))):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, path, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = package_of(path).split(".")
                parent = ".".join(package[: len(package) - node.level + 1])
                base = ".".join(part for part in (parent, base) if part)
            # `from pkg import name` may import the submodule pkg.name: judge it by that longer name.
            found += [Import(f"{base}.{alias.name}", path, node.lineno) for alias in node.names]
    return found


def environment_reads_in(source: str) -> list[int]:
    """Lines that touch os.environ / os.getenv, or import them from os."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ENVIRONMENT_READERS:
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                lines.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            if any(alias.name in ENVIRONMENT_READERS for alias in node.names):
                lines.append(node.lineno)
    return lines


def python_files(layer: str) -> list[Path]:
    return sorted((ROOT / layer).rglob("*.py"))


def imports_of(layer: str) -> list[Import]:
    return [found for path in python_files(layer) for found in imports_in(path.read_text(), path)]


def is_within(module: str, package: str) -> bool:
    return module == package or module.startswith(f"{package}.")


def is_standard_library(module: str) -> bool:
    return module.partition(".")[0] in sys.stdlib_module_names


def domain_may_import(module: str) -> bool:
    return (
        is_standard_library(module)
        or is_within(module, "domain")
        or any(is_within(module, allowed) for allowed in DOMAIN_MAY_IMPORT)
    )


# The walker itself -----------------------------------------------------------------------------


def test_the_import_walker_sees_every_form_of_import() -> None:
    path = ROOT / "adapters" / "channels" / "example.py"
    source = """
import os, msgspec.json
from typing import TYPE_CHECKING
from . import twilio_sms
from .. import codec
from ..sealing import SealingMapper
from api import settings
if TYPE_CHECKING:
    from api.bootstrap import Hub
def later():
    import api.cli
"""
    modules = {found.module for found in imports_in(source, path)}

    assert modules == {
        "os", "msgspec.json", "typing.TYPE_CHECKING", "adapters.channels.twilio_sms", "adapters.codec", "adapters.sealing.SealingMapper",
        "api.settings", "api.bootstrap.Hub", "api.cli",
    }


def test_the_environment_check_sees_every_way_of_reading_it() -> None:
    source = "import os\nfrom os import getenv\nA = os.environ['X']\nB = os.getenv('Y')\nC = os.path.join('a')\n"

    assert environment_reads_in(source) == [2, 3, 4]


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("datetime", True), ("zoneinfo.ZoneInfo", True), ("msgspec.Struct", True),
        ("eventsourcing.domain.Aggregate", True), ("eventsourcing.persistence.Mapper", True),
        ("domain.errors.ContactErasedError", True), ("eventsourcing.postgres", False),
        ("cryptography.hazmat", False), ("psycopg", False), ("adapters.codec", False), ("api.settings", False),
        ("projections", False), ("domainish", False),
    ],
)
def test_the_domain_rule_tells_allowed_from_forbidden_modules(module: str, allowed: bool) -> None:
    assert domain_may_import(module) is allowed


@pytest.mark.parametrize("layer", LAYERS)
def test_every_layer_exists_as_a_package(layer: str) -> None:
    assert (ROOT / layer / "__init__.py").is_file()


# The rules -------------------------------------------------------------------------------------


def test_domain_imports_only_the_standard_library_msgspec_eventsourcing_and_itself() -> None:
    violations = [str(found) for found in imports_of("domain") if not domain_may_import(found.module)]

    assert not violations, "domain/ must stay pure:\n" + "\n".join(violations)


@pytest.mark.parametrize("layer", ["adapters", "projections"])
def test_adapters_and_projections_never_import_api(layer: str) -> None:
    violations = [str(found) for found in imports_of(layer) if is_within(found.module, "api")]

    assert not violations, f"{layer}/ must not depend on api/:\n" + "\n".join(violations)


def test_nothing_outside_api_imports_api() -> None:
    outside = [found for layer in LAYERS if layer != "api" for found in imports_of(layer)]

    violations = [str(found) for found in outside if is_within(found.module, "api")]

    assert not violations, "only api/ itself (and tests, bench) may import api/:\n" + "\n".join(violations)


def test_only_the_settings_module_reads_the_process_environment() -> None:
    violations = [
        f"{path.relative_to(ROOT)}:{line}"
        for layer in LAYERS
        for path in python_files(layer)
        if module_name(path) != SETTINGS_MODULE
        for line in environment_reads_in(path.read_text())
    ]

    assert not violations, "read configuration through api/settings.py, not os.environ:\n" + "\n".join(violations)
