"""Study profiles: plain YAML files saying which notebooks run with which parameters.

A profile (the shipped ones are the YAML files of ``lbw_utils/runner/profiles/``, :func:`available_profiles`;
any other YAML file of the same shape works) looks like::

    description: one line
    shared: {seeds: [0, 1, 2]}              # given to every notebook that declares them
    studies:
      fashion_mnist:
        parameters: {dataset: fashion_mnist, epochs: 3}
        notebooks: [01_baseline, 02_tpr_analysis]
        overrides: {02_tpr_analysis: {top_pairs: 8}}
    final: [06_paper_figures]
    seeds_per_shard: 2                      # optional: seeds a shard of the fan-out trains (default 1)
    headline: fashion_mnist                 # optional: the dataset heading the README when published

Every key is checked: a typo is an error before anything runs, never a silent
full-size run. Each notebook receives the parameters it takes (those its `parameters` cell declares, and,
for a notebook that trains, every training, data and model setting, e.g. ``epochs``); a parameter that none
of a study's notebooks takes is an error.

A study may also say ``seeds_per_shard`` (its own, instead of the profile's) and ``minutes_per_seed`` (about
how long one of its seeds takes on the hardware the profile is meant for): the fan-out then starts the
longest shards first, so that no worker is left with a long shard while the others idle at the end.

``headline`` names the dataset (as its ``tables/<dataset>/`` folder is named) whose goal statement and paired
table ``make publish`` puts at the head of the README (:mod:`lbw_utils.runner.publish`); ``null``: none. A profile
that does not say has :data:`DEFAULT_HEADLINE`'s.

The lists of profiles that readers see are made from these files, never typed: the table of the README and of
``docs/reproducibility.md`` (between ``<!-- profiles:start -->`` and ``<!-- profiles:end -->``, rewritten by
``python -m lbw_utils.runner.profiles --write``; a test fails while they differ from the files), ``make help`` and
``reproduce --help``.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import papermill
import yaml

from lbw_utils.config import REPO_ROOT
from lbw_utils.files import replace_marked_block
from lbw_utils.runs.notebook import settings_parameters_of

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
NOTEBOOK_DIR = Path(__file__).resolve().parents[2] / "notebooks"
PROFILE_KEYS = {"description", "shared", "studies", "final", "seeds_per_shard", "headline"}
# The README's headline dataset of a profile that names none: the image study every full profile runs.
DEFAULT_HEADLINE = "fashion_mnist"
STUDY_KEYS = {"parameters", "notebooks", "overrides", "seeds_per_shard", "minutes_per_seed"}


# The generated table of the shipped profiles in these pages (paths relative to the repository).
PROFILE_TABLE_PAGES = ("README.md", "docs/reproducibility.md")
PROFILE_TABLE_START, PROFILE_TABLE_END = "<!-- profiles:start -->", "<!-- profiles:end -->"
# What a profile's `shared: {device: ...}` means to a reader (a profile that names none trains where `auto` would).
DEVICE_WORDS = {"auto": "a CUDA GPU where there is one, else the CPU", "cpu": "the CPU", "cuda": "a CUDA GPU"}


class ProfileError(ValueError):
    """A profile file that does not have the expected shape."""


@dataclass(frozen=True)
class Step:
    """One notebook execution: which notebook, under which study name, with which parameters."""

    study: str
    notebook: str
    parameters: dict

    @property
    def name(self) -> str:
        return f"{self.study}__{self.notebook}" if self.study else self.notebook


def available_profiles() -> list[str]:
    return sorted(path.stem for path in PROFILE_DIR.glob("*.yaml"))


def profile_path(name_or_path: str | Path) -> Path:
    """A shipped profile's name (``cpu``) or the path of a user's YAML file."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml"):
        if not path.exists():
            raise ProfileError(f"profile file {path} does not exist")
        return path
    shipped = PROFILE_DIR / f"{name_or_path}.yaml"
    if not shipped.exists():
        raise ProfileError(f"profile {name_or_path!r} is not known; choose one of {available_profiles()} "
                           "or give the path of a YAML file")
    return shipped


def notebook_parameters(notebook: str) -> dict:
    """The parameters a notebook takes, with their defaults as source text: those its `parameters` cell
    declares, and a training notebook's settings parameters (``"None"``: the dataclass's default)."""
    path = NOTEBOOK_DIR / f"{notebook}.ipynb"
    if not path.exists():
        known = sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
        raise ProfileError(f"notebook {notebook!r} does not exist; the notebooks are {known}")
    declared = {name: spec["default"] for name, spec in papermill.inspect_notebook(str(path)).items()}
    return {**dict.fromkeys(settings_parameters_of(path), "None"), **declared}


def load_profile(name_or_path: str | Path) -> tuple[dict, list[Step]]:
    """Parse and check a profile; return its raw content and the ordered steps."""
    path = profile_path(name_or_path)
    content = _read(path)
    _check_keys(content, PROFILE_KEYS, f"profile {path}", required={"studies"})
    _headline(content, f"profile {path}")
    shared = _mapping(content.get("shared"), f"profile {path}: shared")
    studies = _mapping(content["studies"], f"profile {path}: studies")
    final = _notebook_list(content.get("final"), f"profile {path}: final", allow_empty=True)
    _check_seeds_per_shard(content, f"profile {path}")
    steps = []
    for study, spec in studies.items():
        steps += _study_steps(path, study, spec, shared)
    for notebook in final:
        declared = notebook_parameters(notebook)
        steps.append(Step("", notebook, {k: v for k, v in shared.items() if k in declared}))
    # A shared key that no notebook declares would be dropped silently (a typo such as `seed:`
    # would run every notebook with its default seeds).
    declared_anywhere = {name for notebook in {step.notebook for step in steps}
                         for name in notebook_parameters(notebook)}
    unused = sorted(set(shared) - declared_anywhere)
    if unused:
        raise ProfileError(f"profile {path}: shared parameter(s) {unused} are declared by none of its notebooks; "
                           f"they declare: {sorted(declared_anywhere)}")
    return content, steps


def headline_dataset(name_or_path: str | Path) -> str | None:
    """The dataset whose tables head the README when the profile is published (None: no headline)."""
    path = profile_path(name_or_path)
    content = _read(path)
    _check_keys(content, PROFILE_KEYS, f"profile {path}", required={"studies"})
    return _headline(content, f"profile {path}")


def _read(path: Path):
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ProfileError(f"profile {path} is not valid YAML: {error}") from error


def _headline(content: dict, where: str) -> str | None:
    value = content.get("headline", DEFAULT_HEADLINE)
    if value is not None and not (isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", value)):
        raise ProfileError(f"{where}: headline={value!r} must be a dataset name as its tables folder is named "
                           f"(letters, digits, '_', '.', '-'; e.g. {DEFAULT_HEADLINE!r}), or null for no headline")
    return value


def _study_steps(path: Path, study: str, spec: dict, shared: dict) -> list[Step]:
    where = f"profile {path}, study {study!r}"
    _check_keys(spec, STUDY_KEYS, where, required={"notebooks"})
    _check_seeds_per_shard(spec, where)
    minutes = spec.get("minutes_per_seed", 1.0)
    if isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or not 0 < minutes < float("inf"):
        raise ProfileError(f"{where}: minutes_per_seed={minutes!r} must be a positive number (about how many "
                           "minutes one seed of the study takes; the fan-out starts the longest shards first)")
    notebooks = _notebook_list(spec["notebooks"], f"{where}: notebooks")
    parameters = _mapping(spec.get("parameters"), f"{where}: parameters")
    overrides = _mapping(spec.get("overrides"), f"{where}: overrides")
    stray = sorted(set(overrides) - set(notebooks))
    if stray:
        raise ProfileError(f"{where}: overrides name notebooks {stray} that the study does not run; "
                           f"it runs {notebooks}")
    declared = {notebook: notebook_parameters(notebook) for notebook in notebooks}
    accepted = sorted({name for names in declared.values() for name in names})
    unused = sorted(set(parameters) - set(accepted))
    if unused:
        raise ProfileError(f"{where}: parameter(s) {unused} are declared by none of {notebooks}; "
                           f"they accept: {accepted}")
    steps = []
    for notebook in notebooks:
        own = _mapping(overrides.get(notebook), f"{where}: overrides of {notebook}")
        unknown = sorted(set(own) - set(declared[notebook]))
        if unknown:
            raise ProfileError(f"{where}: override(s) {unknown} are not parameters of {notebook}; "
                               f"it accepts {sorted(declared[notebook])}")
        merged = {**shared, **parameters, **own}
        steps.append(Step(study, notebook, {k: v for k, v in merged.items() if k in declared[notebook]}))
    return steps


def _check_seeds_per_shard(section: dict, where: str) -> None:
    per_shard = section.get("seeds_per_shard", 1)
    if isinstance(per_shard, bool) or not isinstance(per_shard, int) or per_shard < 1:
        raise ProfileError(f"{where}: seeds_per_shard={per_shard!r} must be a positive integer "
                           f"(the seeds one shard of the fan-out trains)")


def _mapping(value, where: str) -> dict:
    """A section that must be a mapping (absent or empty: {})."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProfileError(f"{where} must be a mapping (name: value), got {type(value).__name__} {value!r}")
    return dict(value)


def _notebook_list(value, where: str, allow_empty: bool = False) -> list[str]:
    """A list of notebook names (a lone string would be read one character at a time)."""
    if value is None and allow_empty:
        return []
    is_names = isinstance(value, list) and all(isinstance(name, str) for name in value)
    if not is_names or (not value and not allow_empty):
        known = sorted(p.stem for p in NOTEBOOK_DIR.glob("*.ipynb"))
        raise ProfileError(f"{where} must be a {'' if allow_empty else 'non-empty '}list of notebook names "
                           f"(from {known}), got {value!r}")
    return list(value)


def _check_keys(mapping, allowed: set[str], where: str, required: set[str] = frozenset()) -> None:
    if not isinstance(mapping, dict):
        raise ProfileError(f"{where} must be a mapping, got {type(mapping).__name__}")
    unknown = sorted(set(mapping) - allowed)
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {unknown}; allowed: {sorted(allowed)}")
    missing = sorted(required - set(mapping))
    if missing:
        raise ProfileError(f"{where}: missing key(s) {missing}")


def profiles_table() -> str:
    """The markdown table of the shipped profiles, read from their files: name, description and where it trains.
    Every profile file is a row, so a new profile appears without an edit here."""
    rows = ["| profile | what it runs (its `description`) | trains on |", "|---|---|---|"]
    for name in available_profiles():
        content = _read(PROFILE_DIR / f"{name}.yaml")
        _check_keys(content, PROFILE_KEYS, f"profile {name}", required={"studies"})
        device = str(_mapping(content.get("shared"), f"profile {name}: shared").get("device", "auto"))
        where = DEVICE_WORDS.get(device.split(":")[0], f"`{device}`")
        description = " ".join(str(content.get("description", "")).split()).replace("|", "\\|")
        rows.append(f"| `{name}` | {description} | {where} |")
    return "\n".join(rows)


def write_profile_tables(repo_root: Path = REPO_ROOT) -> list[Path]:
    """Rewrite the profile table of every page of :data:`PROFILE_TABLE_PAGES` that has its markers; return those."""
    written = []
    for relative in PROFILE_TABLE_PAGES:
        page = repo_root / relative
        if replace_marked_block(page, PROFILE_TABLE_START, PROFILE_TABLE_END, profiles_table()):
            written.append(page)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The shipped profiles, from their files.")
    parser.add_argument("--write", action="store_true",
                        help=f"rewrite the generated profile table of {' and '.join(PROFILE_TABLE_PAGES)}")
    args = parser.parse_args(argv)
    if args.write:
        for page in write_profile_tables():
            print(f"rewrote the profile table of {page}")
    else:
        print(profiles_table())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
