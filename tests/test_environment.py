"""pyproject.toml and environment.yml must describe the same dependencies."""

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# conda-forge names that differ from the PyPI names
CONDA_TO_PYPI = {"pytorch": "torch"}
NOT_PACKAGES = {"python", "pip"}


def _split(requirement: str) -> tuple[str, str]:
    name, spec = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", requirement).groups()
    return name.lower().replace("_", "-"), spec.replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    requirements = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        requirements += extra
    return dict(_split(r) for r in requirements)


def conda_requirements() -> dict[str, str]:
    content = yaml.safe_load((ROOT / "environment.yml").read_text())
    found = {}
    for entry in content["dependencies"]:
        if isinstance(entry, str):
            name, spec = _split(entry)
            if name not in NOT_PACKAGES:
                found[CONDA_TO_PYPI.get(name, name)] = spec
    return found


def test_same_packages_and_versions():
    assert conda_requirements() == pyproject_requirements()


def test_torch_and_torchvision_pinned_as_a_pair():
    requirements = pyproject_requirements()
    assert requirements["torch"].startswith("==") and requirements["torchvision"].startswith("==")


def test_environment_installs_the_package_itself():
    content = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(entry["pip"] for entry in content["dependencies"] if isinstance(entry, dict))
    assert "--editable ." in pip_section
