"""Every method a study can run, collected from the method files of this package: the one list
(:data:`METHODS`), the allowed-keys check, ``make_loss`` and the labels. The registry declares no method:
each method file declares its own entries (:class:`~lbw_utils.methods.spec.MethodSpec`) beside its code.

Adding a method
---------------
One new file in ``lbw_utils/methods/``: the method's code (for a loss, its ``nn.Module``; the hooks the
training loop calls on it are :class:`~lbw_utils.train.LossHooks`) and a module-level list
``SPECS = [MethodSpec(...)]``, with a module docstring that says what the file holds. Every module of this
package that defines ``SPECS`` is collected when ``lbw_utils.methods`` is imported, so the method reaches
every process: a notebook's kernel, the runner's workers, a fan-out shard. ``docs/extending.md`` works one
example through. A method file imports what it needs from :mod:`~lbw_utils.methods.spec`,
:mod:`~lbw_utils.methods.common` or another method file, never from ``lbw_utils.methods`` itself (the
package is still being imported while it is collected).

:func:`register` adds an entry from a reader's own code instead; it reaches only the process that calls it.

Kinds
-----
How a method runs is its kind's business (:mod:`lbw_utils.methods.kinds`, one object per kind; the
experiment layer asks it and never tests a kind's name); what an entry of each kind gives is said in
:class:`~lbw_utils.methods.spec.MethodSpec`:

``"train"``    a loss for :func:`lbw_utils.train.fit`, built by the entry's ``build``;
``"posthoc"``  adjusts a trained run's logits with the entry's ``adjustment``; never trains;
``"fit"``      a model that is not a network trained by ``fit`` (e.g. a linear yardstick), fitted directly.

A method of kind ``"fit"`` names its function as ``"package.module:function"``, e.g.
``MethodSpec("ngram-logreg", "fit", {"C": positive_number(3.0)}, fit="lbw_utils.methods.yardstick:ngram_logreg_outcome")``.
The name is resolved only when a run needs it (:func:`lbw_utils.methods.kinds.resolve_fit`). The
function is called as ``fn(method, data, seed, tpr) -> outcome`` (``method``: the run's dict as given;
``tpr``: the baseline's validation TPRs when ``needs_baseline_tpr``, else None) and returns the dict
the ``"train"`` kind's outcome returns: ``val_logits`` and ``test_logits`` (CPU float
tensors ``[N, C]`` in split order), ``history`` (a dict or None), ``train_seconds``, ``loss_record``
(JSON-serialisable), ``model`` (a JSON-serialisable description); ``state_dict`` and ``best_val`` are
optional (without ``state_dict`` the run's artifact holds only its logits).

Order
-----
:data:`METHODS` holds the method files in the alphabetical order of their module names, each file's entries in
the order of its ``SPECS``, then whatever :func:`register` adds. The order says only how lists of names read
(error messages, :func:`methods_of_kind`); no run, record or label depends on it.

Names
-----
A run has two names: its label (:func:`method_label`, file-safe and unique: CSV files, file names, records) and
the name a reader sees (:func:`display_name`: tables' first column, figure legends, generated sentences), from
its entry's ``display``. :func:`display_name` takes a method dict, a run record or a label; a label is read back
into the method dict that gives it (:func:`method_from_label`), so a table that holds only labels is shown with
names too.

Validation happens once, where a method enters (:func:`check_method_options`, called by
``experiments.check_method`` and :func:`make_loss`); :func:`build_loss` trusts its input.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import Any

from torch import nn

from lbw_utils.methods.common import _num_classes
from lbw_utils.methods.kinds import BASELINE, Kind, resolve_kind
from lbw_utils.methods.spec import MethodSpec, Parameter


# --------------------------------------------------------------------------
# Collecting the method files
# --------------------------------------------------------------------------

def method_modules() -> list[str]:
    """The modules of this package (``lbw_utils.methods``) that declare ``SPECS``, in alphabetical order; each
    is imported here. The package is found by this file's folder, not imported: it is importing this module."""
    found = []
    for module in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda info: info.name):
        name = f"{__package__}.{module.name}"
        if name != __name__ and hasattr(importlib.import_module(name), "SPECS"):
            found.append(name)
    return found


def collect(modules: list[str]) -> dict[str, MethodSpec]:
    """Every entry of the modules' ``SPECS``, by name; a ValueError for an entry that is not a
    :class:`MethodSpec` or a name that two entries share (naming both modules)."""
    methods: dict[str, MethodSpec] = {}
    declared_in: dict[str, str] = {}
    for module_name in modules:
        specs = importlib.import_module(module_name).SPECS
        if not isinstance(specs, (list, tuple)):
            raise ValueError(f"{module_name}.SPECS={specs!r} is not allowed: expected a list of MethodSpec")
        for spec in specs:
            if not isinstance(spec, MethodSpec):
                raise ValueError(f"{module_name}.SPECS holds {spec!r}: expected only MethodSpec entries")
            if spec.name in methods:
                raise ValueError(f"method {spec.name!r} is declared twice, in {declared_in[spec.name]} and in "
                                 f"{module_name}: choose another name")
            methods[spec.name] = spec
            declared_in[spec.name] = module_name
    return methods


METHODS: dict[str, MethodSpec] = collect(method_modules())


def register(spec: MethodSpec) -> MethodSpec:
    """Add a method to :data:`METHODS` from a reader's own code (e.g. a study's module); its name must be new.
    Returns the entry.

    It reaches only the process that calls it: a notebook's kernel and the runner's workers are fresh
    processes, which know the method only if they run the call too. A file in ``lbw_utils/methods/`` that
    declares ``SPECS`` reaches them all (module docstring)."""
    if not isinstance(spec, MethodSpec):
        raise ValueError(f"register({spec!r}) is not allowed: expected a MethodSpec")
    if spec.name in METHODS:
        raise ValueError(f"method {spec.name!r} is already registered; choose another name")
    METHODS[spec.name] = spec
    return spec


def methods_of_kind(kind: "str | Kind") -> tuple[str, ...]:
    kind = resolve_kind(kind)
    return tuple(name for name, spec in METHODS.items() if spec.kind is kind)


LOSS_METHODS = methods_of_kind("train")  # the methods fit trains with a loss


# --------------------------------------------------------------------------
# Checking and building
# --------------------------------------------------------------------------

def method_spec(method: Any) -> MethodSpec:
    """The registry entry of a method dict, or a ValueError naming what is allowed."""
    if not isinstance(method, dict) or not isinstance(method.get("name"), str):
        raise ValueError(f"method={method!r} is not allowed: expected a dict with a 'name' key, "
                         f"one of {tuple(METHODS)}")
    if method["name"] not in METHODS:
        raise ValueError(f"method name {method['name']!r} is unknown: expected one of {tuple(METHODS)}")
    return METHODS[method["name"]]


def check_method_options(method: dict) -> MethodSpec:
    """Refuse unknown keys and values outside what the method's parameters allow; return the entry.

    ``label`` (a display name) is allowed on every method. Nested methods (post-hoc's ``of``) are
    the caller's to check.
    """
    spec = method_spec(method)
    options = {key: value for key, value in method.items() if key not in ("name", "label")}
    unknown = sorted(set(options) - set(spec.parameters))
    if unknown:
        raise ValueError(f"method {spec.name!r} got unknown key(s) {unknown}: allowed keys are {spec.keys}")
    for key, value in options.items():
        spec.parameters[key].check(key, value)
    if spec.constraint is not None:
        spec.constraint(options)
    return spec


def needs_baseline_tpr(method: dict) -> bool:
    """Whether the run of ``method`` (checked where it entered) reads the baseline's validation TPRs (same seed)."""
    return METHODS[method["name"]].reads_baseline_tpr_of(method)


def build_loss(method: dict, num_classes: int, *, tpr: Any = None, label_smoothing: float = 0.0) -> nn.Module:
    """The loss of a method dict that :func:`check_method_options` accepted (no second check)."""
    return METHODS[method["name"]].make(method, num_classes, tpr=tpr, label_smoothing=label_smoothing)


def make_loss(method: dict, num_classes: int, *, tpr: Any = None, label_smoothing: float = 0.0) -> nn.Module:
    """Build the loss a method dict describes, e.g. ``{"name": "static", "scheme": "mean-ratio", "gamma": 4}``,
    ``{"name": "cdb"}``, ``{"name": "minrecall", "form": "logit-adjusted"}`` or
    ``{"name": "margin", "source": "static", "gamma": 4}``; keys left out take the entry's defaults.

    ``tpr`` (the baseline run's *validation* TPRs, never the test split's) is required by the
    methods that need it (:func:`needs_baseline_tpr`) and ignored by the others.
    """
    num_classes = _num_classes(num_classes)
    check_method_options(method)
    return build_loss(method, num_classes, tpr=tpr, label_smoothing=label_smoothing)


def check_method(method: Any) -> MethodSpec:
    """Refuse a method dict that could not run: unknown name, key, scheme, objective or option value, and
    what its kind refuses of the methods it nests (a post-hoc method's ``of``); return its entry.

    The keys and values are checked against the entry's declaration (its parameters and their allowed
    values), once, where the method enters; the run then trusts them. What only the data can refuse (e.g.
    the mean-ratio formula's division by a TPR of 0) is refused when the run builds it.
    """
    if not isinstance(method, dict) or not isinstance(method.get("name"), str):
        raise ValueError(f"method={method!r} is not allowed: expected a dict whose 'name' is one of {tuple(METHODS)}")
    spec = check_method_options(method)
    spec.kind.check(method, check_method, lambda nested: METHODS[nested["name"]].kind)
    return spec


def method_label(method: dict) -> str:
    """A readable, file-safe, unique name, e.g. ``static-mean-ratio-gamma4``, ``ema-alpha0.01-norm``,
    ``baseline+posthoc-budget-drop0.01`` (post-hoc offsets on top of the baseline).

    The method's entry says which keys lead with their bare value (``label_leading``) and
    which are shortened (``label_short``); the other keys given follow alphabetically as
    ``<key><value>`` (``<key>`` for True). Keys left out of the dict stay out of the label. The kind
    may add to it (a post-hoc label starts with the label of the run it adjusts)."""
    if "label" in method:
        return str(method["label"])
    spec = METHODS.get(method["name"])
    leading = spec.label_leading if spec is not None else ()
    short_keys = spec.label_short if spec is not None else {}
    parts = [str(method["name"])]
    parts += [str(method[key]) for key in leading if key in method]
    for key in sorted(set(method) - {"name", "of", *leading}):
        value, short = method[key], short_keys.get(key, key)
        if value is True:
            parts.append(short)
        elif value is not False and value is not None:
            parts.append(f"{short}{value}")
    label = "-".join(parts).replace("/", "_").replace(" ", "")
    return spec.kind.label(label, method, method_label) if spec is not None else label


# --------------------------------------------------------------------------
# The name a reader sees
# --------------------------------------------------------------------------

def display_name(item: Any) -> str:
    """The name a reader sees for a run: ``item`` is a method dict (``{"name": "static", "gamma": 4}``: "TPR
    weights (Q&A recipe), γ = 4"), a run record (its ``method``) or a label (``static-mean-ratio-gamma4``, read
    back by :func:`method_from_label`). A post-hoc method is named after the run it adjusts: "baseline + post-hoc
    offsets (budget 1 pt)". A dict with its own ``label``, and a label no registered method gives (a reference
    row such as the ceiling, a relabelled row), keep that label; an unknown method name is shown as it is."""
    if isinstance(item, str):
        method = method_from_label(item)
        return item if method is None else display_name(method)
    if isinstance(item, dict) and "name" not in item and isinstance(item.get("method"), dict):
        return display_name(item["method"])  # a run record
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise ValueError(f"display_name({item!r}) is not allowed: expected a method dict (with a 'name'), a run "
                         "record (with a 'method') or a label")
    if "label" in item:
        return display_name(str(item["label"]))
    spec = METHODS.get(item["name"])
    if spec is None:
        return item["name"]
    own = spec.display_text(item)
    if spec.kind.adjusts_a_run:
        return f"{display_name(item.get('of', BASELINE))} + {own}"
    return own


def method_from_label(label: str) -> dict | None:
    """The method dict whose :func:`method_label` is ``label`` (only the keys the label shows), or None where no
    registered method gives that label (a label chosen by hand, a reference row). Every reading is checked by
    writing its label again, so a dict returned gives exactly ``label``."""
    if not isinstance(label, str):
        raise ValueError(f"label={label!r} is not allowed: expected a run label such as 'static-mean-ratio-gamma4'")
    for method in _readings(label):
        try:
            if method_label(method) == label:
                return method
        except (KeyError, TypeError, ValueError):
            continue
    return None


def _readings(label: str):
    """Every method dict ``label`` might be the label of (checked by the caller): a post-hoc label splits at a
    ``+`` into the run it adjusts and its own part."""
    for spec in METHODS.values():
        if spec.kind.adjusts_a_run:
            for index in [i for i, character in enumerate(label) if character == "+"]:
                for own in _own_readings(spec, label[index + 1:]):
                    base = method_from_label(label[:index])
                    if base is not None and not METHODS[base["name"]].kind.adjusts_a_run:
                        yield {**own, "of": base}
        else:
            yield from _own_readings(spec, label)


def _own_readings(spec: MethodSpec, label: str):
    """The dicts of ``spec`` whose own label (without a post-hoc prefix) may be ``label``: the name, the leading
    keys' bare values in order (each may be absent), then ``<key><value>`` parts in the keys' alphabetical order."""
    if label != spec.name and not label.startswith(spec.name + "-"):
        return
    tokens = label[len(spec.name) + 1:].split("-") if label != spec.name else []
    leading = [key for key in spec.label_leading if key in spec.parameters]

    def lead(position: int, index: int, found: dict):
        if index == len(leading):
            yield from keyed(position, found, "")
            return
        yield from lead(position, index + 1, found)  # the key is not given
        key = leading[index]
        for end in range(position + 1, len(tokens) + 1):
            for value in _values(spec.parameters[key], "-".join(tokens[position:end])):
                yield from lead(end, index + 1, {**found, key: value})

    def keyed(position: int, found: dict, last: str):
        if position == len(tokens):
            yield {"name": spec.name, **found}
            return
        for end in range(position + 1, len(tokens) + 1):
            part = "-".join(tokens[position:end])
            for key, parameter in spec.parameters.items():
                short = spec.label_short.get(key, key)
                if key in found or key in leading or key == "of" or key <= last or not part.startswith(short):
                    continue
                text = part[len(short):]
                for value in (([True] if parameter.accepts(True) else []) if text == "" else _values(parameter, text)):
                    yield from keyed(end, {**found, key: value}, key)

    yield from lead(0, 0, {})


def _values(parameter: Parameter, text: str) -> list:
    """The values a label's ``text`` may stand for that ``parameter`` accepts: an integer, a float, the text."""
    found = []
    for read in (int, float, str):
        try:
            value = read(text)
        except ValueError:
            continue
        if parameter.accepts(value) and value not in found:
            found.append(value)
    return found
