#!/usr/bin/env python
"""Check that every installed dependency satisfies pyproject.toml's requirement (CI runs this
before the tests), so a floor that the code does not really meet cannot pass unnoticed."""

from __future__ import annotations

import sys
import tomllib
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def problems(requirements: list[str]) -> list[str]:
    """One line per requirement the installed packages do not satisfy."""
    found = []
    for line in requirements:
        requirement = Requirement(line)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        try:
            installed = metadata.version(requirement.name)
        except metadata.PackageNotFoundError:
            found.append(f"{requirement}: not installed")
            continue
        # A local build tag (torch 2.13.0+cpu) still is 2.13.0.
        if not requirement.specifier.contains(Version(installed).public, prereleases=True):
            found.append(f"{requirement}: installed {installed}")
    return found


def main() -> int:
    project = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]
    requirements = list(project["dependencies"]) + list(project["optional-dependencies"].get("dev", []))
    bad = problems(requirements)
    for line in bad:
        print(f"check_versions: {line}", file=sys.stderr)
    if not bad:
        print(f"check_versions: {len(requirements)} requirements of pyproject.toml satisfied")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
