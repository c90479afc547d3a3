"""A run's settings in a TOML file: ``hybrid run --config run.toml``.

The keys are the long names of the pipeline commands' flags, without the dashes in front
(``min-user-ratings = 5``; ``min_user_ratings`` works too). A repeatable flag takes a list
(``ratings = ["a.csv", "b.csv"]``, or one string), a KEY=VALUE flag a table::

    out = "artifacts/el"
    ratings = ["Electronics.csv"]
    meta = ["meta_Electronics.json.gz"]
    min-user-ratings = 5
    kcore = true

    [recommender-param]
    candidates = 300
    retrieval.epochs = 10          # the flag's retrieval.epochs=10

A flag on the command line wins over the file: a repeatable one replaces the file's list, a
KEY=VALUE one the file's value of that key. Paths
are read as on the command line: from the folder the command runs in. Every run writes the
settings it ran with to ``settings.toml`` in its output folder; ``--config`` on that file runs
the same again.
"""

from __future__ import annotations

import argparse
import json
import tomllib

from hybrid.core.errors import ArgumentError

#: KEY=VALUE flags: their values are JSON read from the text (spark-conf's stay text).
PAIR_FLAGS = {"model_param": True, "train_param": True, "recommender_param": True, "spark_conf": False}


def read(path: str) -> dict:
    """The TOML file at ``path`` as a dict; ``ArgumentError`` naming the file and the reason."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ArgumentError(f"--config {path}: cannot read it ({exc.strerror or exc})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ArgumentError(f"--config {path}: not TOML ({exc})") from None


def apply(args: argparse.Namespace, parser: argparse.ArgumentParser, argv: list[str],
          settings: set[str], path: str) -> None:
    """Set on ``args`` every setting the file at ``path`` gives and the command line
    (``argv``, the words after the command's name) does not. ``settings``: the dests a file may
    set. Every value is checked as its flag checks it: a wrong key, type or choice is an
    ``ArgumentError`` naming the key before anything runs."""
    values = read(path)
    actions = {action.dest: action for action in parser._actions}
    given = _given(parser, argv)
    for key, value in values.items():
        dest = key.replace("-", "_")
        if dest not in settings:
            near = "" if dest not in actions else " (it is not a setting of the run: give it as a flag)"
            raise ArgumentError(f"--config {path}: unknown key {key!r}{near}; the keys are "
                                f"{', '.join(sorted(d.replace('_', '-') for d in settings))}")
        value = _value(actions[dest], key, value, path)
        if dest not in given:
            setattr(args, dest, value)
        elif dest in PAIR_FLAGS:  # per key: the flag's KEY=VALUE wins over the file's
            setattr(args, dest, value + getattr(args, dest))


def _given(parser: argparse.ArgumentParser, argv: list[str]) -> set[str]:
    """The dests the command line sets: ``argv`` parsed with every default suppressed."""
    saved = [(action, action.default) for action in parser._actions]
    defaults, parser._defaults = parser._defaults, {}
    try:
        for action, _ in saved:
            action.default = argparse.SUPPRESS
        return set(vars(parser.parse_known_args(argv)[0]))
    finally:
        for action, default in saved:
            action.default = default
        parser._defaults = defaults


def _value(action: argparse.Action, key: str, value, path: str):
    """``value`` from the file as the flag of ``action`` would have parsed it."""
    where = f"--config {path}: {key}"
    if action.nargs == 0:  # --kcore, --title/--no-title
        if not isinstance(value, bool):
            raise ArgumentError(f"{where} must be true or false, got {value!r}")
        return value
    if action.dest in PAIR_FLAGS:
        if isinstance(value, dict):
            return [f"{name}={text if isinstance(text, str) and not PAIR_FLAGS[action.dest] else json.dumps(text)}"
                    for name, text in _flat(value)]
        value = [value] if isinstance(value, str) else value
    if isinstance(action, argparse._AppendAction):
        items = [value] if not isinstance(value, list) else value
        return [_scalar(action, where, item) for item in items]
    if isinstance(action.nargs, int):  # --rating-range LOW HIGH
        if not isinstance(value, list) or len(value) != action.nargs:
            raise ArgumentError(f"{where} must be a list of {action.nargs} values, got {value!r}")
        return [_scalar(action, where, item) for item in value]
    return _scalar(action, where, value)


def _flat(table: dict, prefix: str = ""):
    """``(dotted key, value)`` of a table: TOML's ``retrieval.epochs = 10`` is a nested table."""
    for name, value in table.items():
        if isinstance(value, dict):
            yield from _flat(value, f"{prefix}{name}.")
        else:
            yield f"{prefix}{name}", value


def _scalar(action: argparse.Action, where: str, value):
    kind = action.type or str
    fits = {str: lambda v: isinstance(v, str), int: lambda v: isinstance(v, int) and not isinstance(v, bool),
            float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)}[kind]
    if not fits(value):
        want = {str: "text", int: "a whole number", float: "a number"}[kind]
        raise ArgumentError(f"{where} must be {want}, got {value!r}")
    value = kind(value)
    if action.choices is not None and value not in action.choices:
        raise ArgumentError(f"{where}: {value!r} is not one of {', '.join(map(str, action.choices))}")
    return value


def effective(args: argparse.Namespace, parser: argparse.ArgumentParser, settings: set[str]) -> dict:
    """The settings of ``args`` as a ``--config`` file holds them, in the flags' order; a setting
    left unset (None, or an empty list) is left out, as it would be from the command line."""
    out = {}
    for action in parser._actions:
        if action.dest not in settings or getattr(args, action.dest, None) in (None, []):
            continue
        value = getattr(args, action.dest)
        if action.dest in PAIR_FLAGS:
            value = key_values(value, as_json=PAIR_FLAGS[action.dest])
        elif isinstance(value, tuple):
            value = list(value)
        out[action.dest.replace("_", "-")] = value
    # scalars first: TOML puts every key after a table into that table
    return dict(sorted(out.items(), key=lambda item: isinstance(item[1], dict)))


def key_values(pairs: list[str], as_json: bool = True) -> dict:
    """``["factors=64", "hidden=[256,64]"]`` -> ``{"factors": 64, "hidden": [256, 64]}``: each
    value read as JSON where it is JSON (with ``as_json``), else kept as text.

    Example:
        >>> key_values(["factors=64", "optimizer=adam", "hidden=[256, 64]"])
        {'factors': 64, 'optimizer': 'adam', 'hidden': [256, 64]}
    """
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise ArgumentError(f"expected KEY=VALUE, got {pair!r}")
        key, value = pair.split("=", 1)
        try:
            out[key.strip()] = json.loads(value) if as_json else value
        except ValueError:
            out[key.strip()] = value
    return out


def to_toml(values: dict, command: str) -> str:
    """``values`` as a settings file, with a first line saying how it is used."""
    import tomli_w

    from hybrid import __version__

    return (f"# hybrid {__version__} settings: `hybrid {command} --config FILE` runs with them "
            "(flags win over the file)\n" + tomli_w.dumps(values))
