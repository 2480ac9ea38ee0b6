"""Short error output for `pgpis` commands: the pgpis message alone, the full trace on request.

jsonargparse wraps an exception raised while LightningCLI instantiates the model
or the data in "Does not validate against any of the Union subtypes" plus a dump
of the whole config Namespace, and reports a mistyped key as ~60 lines of usage.
The user needs three things: what failed, where pgpis looked, how to fix it.
:func:`handle` finds the :class:`pgpis.errors.PgpisError` in the exception's
cause chain (or reduces a config-parsing error to the key, the file/argument
that set it and close matches) and prints that alone, at most
:data:`MAX_LINES` lines, to stderr. ``--traceback`` (stripped from the command
line by :func:`split_traceback_flag`) or ``PGPIS_TRACEBACK=1`` re-raises instead.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
import inspect
import os
import re
import sys
import textwrap
import typing
from pathlib import Path
from typing import Any, Sequence, TextIO

from pgpis.errors import ConfigKeyError, DataFormatError, MissingWeightsError, PgpisError

TRACEBACK_FLAG = "--traceback"
TRACEBACK_ENV = "PGPIS_TRACEBACK"
MAX_LINES = 15
WIDTH = 110
_TRUE = {"1", "true", "yes", "on"}
_TRACE_HINT = f"(full trace: add {TRACEBACK_FLAG} or set {TRACEBACK_ENV}=1)"


class ConfigParseError(Exception):
    """jsonargparse rejected the command line or a config file; raised instead of printing usage and exiting.

    `parser` is the (sub)command parser that rejected it, for the accepted keys.
    """

    def __init__(self, message: str, parser: Any = None):
        super().__init__(message)
        self.message, self.parser = message, parser


# ----------------------------------------------------------------------------- flag and chain
def split_traceback_flag(argv: Sequence[str]) -> tuple[list[str], bool]:
    """`argv` without ``--traceback``, and whether it (or ``PGPIS_TRACEBACK``) asks for full traces."""
    args = [a for a in argv if a != TRACEBACK_FLAG]
    wanted = len(args) != len(argv) or os.environ.get(TRACEBACK_ENV, "").strip().lower() in _TRUE
    return args, wanted


def find_pgpis_error(exc: BaseException) -> PgpisError | None:
    """The first :class:`PgpisError` in `exc`'s ``__cause__`` / ``__context__`` chain (`exc` included)."""
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop(0)
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, PgpisError):
            return e
        todo += [e.__cause__, e.__context__]
    return None


# ----------------------------------------------------------------------------- formatting
def _wrap(label: str, text: str, indent: str = "  ") -> list[str]:
    """`text` wrapped at :data:`WIDTH` after `label`; a `backticked command` stays on one line, to copy and paste."""
    lead = f"{indent}{label}" if label else indent
    text = re.sub(r"`[^`]*`", lambda m: m.group(0).replace(" ", "\0"), " ".join(str(text).split()))
    lines = textwrap.wrap(text, WIDTH, initial_indent=lead, subsequent_indent=indent + "    ",
                          break_on_hyphens=False, break_long_words=False)
    return [ln.replace("\0", " ") for ln in lines]


def _bounded(head: str, body: list[str], limit: int = MAX_LINES) -> str:
    """`head` + `body` + the trace hint in at most `limit` lines (the body is cut with a note if needed)."""
    room = limit - 2
    if len(body) > room:
        body = body[: room - 1] + ["  ... (cut; see the full message with --traceback)"]
    return "\n".join([head, *body, _TRACE_HINT])


def format_error(err: PgpisError, command: str) -> str:
    """The user-facing text of a pgpis error: what failed, where it looked, how to fix it."""
    head = f"pgpis {command}: error:"
    if isinstance(err, MissingWeightsError) and type(err).__str__ is MissingWeightsError.__str__:
        # (subclasses with their own message, e.g. a download that failed verification, take the generic path)
        return _bounded(f"{head} {err.what} not found", _wrap("looked in: ", err.tried) + _wrap("fix: ", err.how))
    if isinstance(err, ConfigKeyError):
        return _bounded(f"{head} unknown config key '{err.key}'", _wrap("set in: ", err.where) + _wrap("hint: ", err.hint))
    if isinstance(err, DataFormatError) and err.problems:
        body: list[str] = []
        for i, p in enumerate(err.problems):
            where = p.file + (f":{p.line}" if p.line is not None else "") + (f" [{p.item}]" if p.item else "")
            lines = _wrap("- ", f"{where}: {p.what}") + _wrap("    fix: ", p.fix)
            if len(body) + len(lines) > MAX_LINES - 3 and body:
                body.append(f"  ... and {len(err.problems) - i} more (`pgpis data check --root ROOT` lists all)")
                break
            body += lines
        return _bounded(f"{head} {len(err.problems)} problem(s) in the input", body)
    lines = str(err).strip().splitlines() or [type(err).__name__]
    first = _wrap("", f"{head} {lines[0]}", indent="")
    return _bounded(first[0], first[1:] + [ln for raw in lines[1:] for ln in _wrap("", raw)])


# ----------------------------------------------------------------------------- config-parse errors
_NOT_ACCEPTED = re.compile(r"Option '([^']+)' is not accepted")
_UNRECOGNIZED = re.compile(r"unrecognized arguments: --?([^\s=]+)")
_SUBCOMMAND_KEY = re.compile(r"(?:Subcommand '[^']+'|Group '([^']+)') does not accept option '([^']+)'")
_BEFORE_SUBCOMMAND = re.compile(r"Option '([^']+)' is not accepted before subcommand")
_PARSER_KEY = re.compile(r'Parser key "([^"]+)"')
_CLASS_PATH = re.compile(r"Problem with given class_path '([^']+)'")
_PARSER_KEY_PREFIX = re.compile(r'^(\s*)Parser key "[^"]+":\s*')
_BOILERPLATE = re.compile(r"^\s*(- )?(Does not validate against any of the Union subtypes|Subtypes:|Errors:|"
                          r"Given value|Expected a <class 'NoneType'>|Problem with given class_path|Parser key)")


def _nested(message: str) -> tuple[list[str], str | None]:
    """Key path segments (``init_args`` between class levels) and the innermost class_path named."""
    segments: list[str] = []
    cls: str | None = None
    for line in message.splitlines():
        if line.lstrip().startswith("- Expected a <class 'NoneType'>"):
            break  # the Union's other branch: nothing more about our key
        m = _PARSER_KEY.search(line)
        if m:
            segments += [s for s in m.group(1).split(".") if not segments or s != segments[-1]]
        m = _CLASS_PATH.search(line)
        if m:
            cls = m.group(1)
            segments.append("init_args")
    return segments, cls


def _import(path: str | None) -> Any:
    if not path or "." not in path:
        return None
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError):
        return None


def _accepted(target: Any) -> list[str]:
    """Keyword names `target` (a class or dataclass) accepts."""
    if dataclasses.is_dataclass(target):
        return [f.name for f in dataclasses.fields(target)]
    try:
        params = list(inspect.signature(target).parameters.values())
    except (TypeError, ValueError):
        return []
    names = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    if inspect.isclass(target) and any(p.kind is p.VAR_KEYWORD for p in params):  # ``**kwargs`` forwarded to a base
        for base in target.__mro__[1:]:
            if "__init__" in vars(base) and base.__init__ is not object.__init__:
                names += [n for n in _accepted(base) if n not in names]
                break
    return names


def _descend(target: Any, names: Sequence[str]) -> Any:
    """Follow nested dataclass-typed parameters (e.g. ``encoder`` -> EncoderSpec) of `target`."""
    for name in names:
        try:
            hints = typing.get_type_hints(target.__init__ if inspect.isclass(target) else target)
        except Exception:  # unresolvable annotations: give up on close matches only
            return None
        hint = hints.get(name)
        options = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
        target = next((o for o in options if inspect.isclass(o)), None)
        if target is None:
            return None
    return target


def _strip_init_args(key: str) -> str:
    return ".".join(s for s in key.split(".") if s != "init_args")


def _where_set(key: str, argv: Sequence[str]) -> str:
    """The command-line argument or config file (with line) that sets `key`."""
    plain = _strip_init_args(key)
    for arg in argv:
        if arg.startswith("--") and _strip_init_args(arg[2:].split("=", 1)[0]) == plain:
            return f"command-line argument {arg.split('=', 1)[0]}"
    files = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a in ("--config", "-c")]
    files += [a.split("=", 1)[1] for a in argv if a.startswith("--config=")]
    for f in reversed(files):  # later files override earlier ones
        line = _yaml_key_line(Path(f), plain.split("."))
        if line is not None:
            return f"{f}:{line}"
    return "the config (" + (", ".join(files) if files else "command line") + ")"


def _yaml_key_line(path: Path, segments: list[str]) -> int | None:
    """1-based line of the nested key `segments` in the YAML file (``init_args`` levels skipped), or None."""
    try:
        import yaml

        node = yaml.compose(path.read_text())
    except Exception:  # not a readable YAML file: the caller falls back to naming the files
        return None
    for seg in segments:
        while True:
            if not isinstance(node, yaml.MappingNode):
                return None
            found = {k.value: (k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode)}
            if seg in found:
                key_node, node = found[seg]
                break
            if "init_args" not in found:
                return None
            node = found["init_args"][1]
    return key_node.start_mark.line + 1


def _subcommand_parser(parser: Any, command: str) -> Any:
    """The parser of `command` (``fit`` ...) below the main parser, which holds the accepted keys."""
    action = getattr(parser, "_subcommands_action", None)
    return getattr(action, "_name_parser_map", {}).get(command, parser) if action is not None else parser


def config_key_error(err: ConfigParseError, command: str, argv: Sequence[str]) -> ConfigKeyError | None:
    """A :class:`ConfigKeyError` (key, where, close matches, hint) for an unknown/mistyped key, else None."""
    msg = err.message
    segments, cls_path = _nested(msg)
    leaf: str | None = None
    for pattern in (_NOT_ACCEPTED, _UNRECOGNIZED):
        found = pattern.findall(msg)
        if found and not _BEFORE_SUBCOMMAND.search(msg):
            leaf = found[-1]
            break
    valid: list[str] = []
    if leaf is not None and cls_path is not None:  # a key below a class_path: model / data / nested
        parts = leaf.split(".")
        owner = _descend(_import(cls_path), [p for p in parts[:-1] if p != "init_args"])
        valid = _accepted(owner) if owner is not None else []
        key = ".".join(segments + parts)
        bad = parts[-1]
        help_hint = (f"`pgpis {command} --{segments[0]}.help {cls_path}` lists its keys; "
                     if len(segments) == 2 and len(parts) == 1 else "")
    else:
        m = _SUBCOMMAND_KEY.search(msg)
        if m is not None:
            key = f"{m.group(1)}.{m.group(2)}" if m.group(1) else m.group(2)
        elif leaf is not None and not segments:  # `--trainer.max_epochz 3`: the subcommand's own options
            key = leaf
        else:
            return None
        dests = [a.dest for a in getattr(_subcommand_parser(err.parser, command), "_actions", []) if a.dest != "help"]
        parts, depth = key.split("."), 0  # the first segment no accepted key has (`trainr` in trainr.max_epochs)
        while depth < len(parts) - 1 and any(d.startswith(".".join(parts[: depth + 1]) + ".") for d in dests):
            depth += 1
        prefix = ".".join(parts[:depth]) + "." if depth else ""
        bad = parts[depth]
        valid = sorted({d[len(prefix):].split(".")[0] for d in dests if d.startswith(prefix)})
        help_hint = f"`pgpis {command} --help` lists the options; "
    close = difflib.get_close_matches(bad, valid, n=3, cutoff=0.6)
    hint = (f"did you mean {' or '.join(repr(c) for c in close)}? " if close else "")
    hint += help_hint + "check the resolved config with --print_config once it parses"
    return ConfigKeyError(key, _where_set(key, argv), hint)


def format_config_parse_error(err: ConfigParseError, command: str, argv: Sequence[str]) -> str:
    """An unknown key as key + where + hint; any other parse error as its innermost message lines."""
    key_err = config_key_error(err, command, argv)
    if key_err is not None:
        return format_error(key_err, command)
    segments, _ = _nested(err.message)
    lines = [_PARSER_KEY_PREFIX.sub("", ln).strip() for ln in err.message.splitlines()]
    kept = [ln for ln in lines if ln and not _BOILERPLATE.match(ln)] or [err.message.strip() or "invalid arguments"]
    head = f"pgpis {command}: error: " + (f"config key '{'.'.join(segments)}': " if segments else "")
    body = [ln for raw in kept[1:] for ln in _wrap("", raw)]
    body += _wrap("hint: ", f"`pgpis {command} --help` lists the options; --print_config shows the resolved config")
    return _bounded(head + kept[0], body)


# ----------------------------------------------------------------------------- entry point
def handle(exc: BaseException, command: str, argv: Sequence[str], show_trace: bool,
           stream: TextIO | None = None) -> int | None:
    """Print the short form of `exc` and return the exit code; None when it is not ours (re-raise it)."""
    if show_trace:
        return None
    stream = stream or sys.stderr
    if isinstance(exc, ConfigParseError):
        print(format_config_parse_error(exc, command, argv), file=stream)
        return 2
    err = find_pgpis_error(exc)
    if err is None:
        return None
    print(format_error(err, command), file=stream)
    return 1
