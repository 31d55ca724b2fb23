"""Check that the hash-pinned locks in ``requirements/`` still match ``pyproject.toml``.

``make lock-check`` runs this (CI does too); ``make lock`` regenerates the locks. It fails
(exit status 1, one line per problem on stderr) when:

- a requirement of ``[project] dependencies`` (runtime and dev lock) or of the ``dev`` extra
  (dev lock) is not pinned, or is pinned with ``==`` to a version its specifier excludes;
- a lock still pins a package as a top-level requirement (annotated ``via … (pyproject.toml)``)
  that pyproject.toml no longer asks for;
- a pin is not an exact ``==`` pin or carries no ``--hash``;
- the dev lock pins a runtime package at another version than the runtime lock.

Usage: ``python tools/check_lock.py [--root DIR]`` (``DIR`` defaults to the repository root).
"""

from __future__ import annotations

import argparse
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name
from packaging.version import Version

RUNTIME_LOCK = Path("requirements/runtime.lock")
DEV_LOCK = Path("requirements/dev.lock")
DEV_EXTRA = "dev"


@dataclass
class Pin:
    """One ``name==version`` entry of a lock: its hashes and its ``# via`` annotation lines."""

    requirement: Requirement
    line: int
    hashes: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)

    @property
    def name(self) -> NormalizedName:
        return canonicalize_name(self.requirement.name)

    @property
    def version(self) -> Version | None:
        """The pinned version, or ``None`` when the entry is not one exact ``==`` pin."""
        specs = list(self.requirement.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
            return None
        return Version(specs[0].version)

    @property
    def top_level(self) -> bool:
        """Whether the lock tool recorded pyproject.toml itself as a reason for this pin."""
        return any("(pyproject.toml)" in line for line in self.via)


def read_lock(path: Path) -> list[Pin]:
    """The entries of a requirements-format lock file, in file order."""
    pins: list[Pin] = []
    current: Pin | None = None
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip().removesuffix("\\").strip()
        if not line:
            continue
        if line.startswith("#"):
            if current is not None:
                current.via.append(line.lstrip("#").strip())
            continue
        if line.startswith("--hash="):
            if current is None:
                raise ValueError(f"{path}:{number}: --hash before any requirement")
            current.hashes.append(line.removeprefix("--hash="))
            continue
        if line.startswith("-"):  # a pip option line (--index-url, -c …): not a pin
            current = None
            continue
        current = Pin(Requirement(line.split(" #", 1)[0].strip()), number)
        pins.append(current)
    return pins


def project_requirements(pyproject: Path) -> tuple[list[Requirement], list[Requirement]]:
    """``(runtime, dev)``: ``[project] dependencies`` and the ``dev`` extra, parsed."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    runtime = [Requirement(text) for text in project.get("dependencies", [])]
    extras = project.get("optional-dependencies", {})
    dev = [Requirement(text) for text in extras.get(DEV_EXTRA, [])]
    return runtime, dev


def check_lock(path: Path, wanted: list[Requirement], pins: list[Pin]) -> list[str]:
    """Problems of one lock against the requirements it must pin (see the module docstring)."""
    problems: list[str] = []
    by_name: dict[NormalizedName, list[Pin]] = {}
    for pin in pins:
        by_name.setdefault(pin.name, []).append(pin)
        where = f"{path}:{pin.line}: {pin.requirement}"
        if pin.version is None:
            problems.append(f"{where}: not an exact == pin")
        if not pin.hashes:
            problems.append(f"{where}: no --hash")
    wanted_names = {canonicalize_name(req.name) for req in wanted}
    for req in wanted:
        found = by_name.get(canonicalize_name(req.name), [])
        if not found:
            problems.append(f"{path}: {req} (pyproject.toml) is not pinned")
        for pin in found:
            version = pin.version
            if version is not None and not req.specifier.contains(version, prereleases=True):
                problems.append(
                    f"{path}:{pin.line}: {pin.name}=={version} does not satisfy"
                    f" {req} (pyproject.toml)"
                )
    for pin in pins:
        if pin.top_level and pin.name not in wanted_names:
            problems.append(
                f"{path}:{pin.line}: {pin.name} is pinned as a top-level requirement"
                " but pyproject.toml no longer asks for it"
            )
    return problems


def check_consistent(runtime: list[Pin], dev: list[Pin]) -> list[str]:
    """Problems where the dev lock pins a runtime-lock package at another version (or not)."""
    dev_versions: dict[NormalizedName, set[Version | None]] = {}
    for pin in dev:
        dev_versions.setdefault(pin.name, set()).add(pin.version)
    return [
        f"{DEV_LOCK}: {pin.name} is pinned at {sorted(map(str, dev_versions.get(pin.name, ())))}"
        f" but {RUNTIME_LOCK}:{pin.line} pins {pin.version}"
        for pin in runtime
        if pin.version not in dev_versions.get(pin.name, set())
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", type=Path, default=Path(__file__).resolve().parents[1], help="repository root"
    )
    root: Path = parser.parse_args(argv).root
    runtime_reqs, dev_reqs = project_requirements(root / "pyproject.toml")
    runtime_pins = read_lock(root / RUNTIME_LOCK)
    dev_pins = read_lock(root / DEV_LOCK)
    problems = [
        *check_lock(RUNTIME_LOCK, runtime_reqs, runtime_pins),
        *check_lock(DEV_LOCK, runtime_reqs + dev_reqs, dev_pins),
        *check_consistent(runtime_pins, dev_pins),
    ]
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print("The locks do not match pyproject.toml: run `make lock`.", file=sys.stderr)
        return 1
    print(
        f"lock-check: {len(runtime_reqs)} runtime and {len(dev_reqs)} dev requirements pinned"
        f" ({len(runtime_pins)} and {len(dev_pins)} packages, all hashed)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
