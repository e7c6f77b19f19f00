"""Reading input files safely: scenarios, cost profiles (YAML) and traces (bytes).

Every input goes through :func:`read_input_bytes`: only a regular file is opened (a FIFO would
block ``open`` forever, a device could be endless), and never more than its size cap is read.
YAML goes through :func:`load_yaml`, a ``yaml.SafeLoader`` that also refuses

- alias bombs ("billion laughs"): aliases share one node, so loading is cheap, but whatever
  walks the result (``str()``, a deep copy, validation) pays the expanded size. More than
  ``MAX_ALIASES`` aliases, or an expansion beyond ``MAX_EXPANDED_NODES`` nodes, is refused;
- an alias inside the node it names (a recursive document): no input means that;
- duplicate keys in a mapping: YAML says they are an error, PyYAML keeps the last silently.

Every failure is one :class:`~emul.errors.InputError` naming the file.
"""
from __future__ import annotations

import os
import stat
from typing import Any

import yaml
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from emul.config.sizes import format_size
from emul.errors import InputError

MAX_ALIASES = 1000             # a hand-written file uses a handful
MAX_EXPANDED_NODES = 100_000   # a scenario is ~100 nodes; a bomb is millions
MAX_SHOWN = 60                 # characters of a key or name quoted in a message
MERGE_TAG = "tag:yaml.org,2002:merge"
_BOMB = "too many YAML aliases (an alias bomb?)"

_KINDS = {stat.S_IFIFO: "a FIFO", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFSOCK: "a socket"}    # (os.stat follows links: never a link itself)


def shorten(text: str, limit: int = MAX_SHOWN) -> str:
    """``text`` cut to ``limit`` characters (with "..."), so no message quotes a huge value."""
    return text if len(text) <= limit else text[:limit - 3] + "..."


# --------------------------------------------------------------------------------------------
# Reading bytes
# --------------------------------------------------------------------------------------------


def _refuse_kind(where: str, mode: int, what: str) -> None:
    """Refuse anything but a regular file, saying what it is instead."""
    if stat.S_ISREG(mode):
        return
    if stat.S_ISDIR(mode):
        raise InputError(where, None, f"is a directory, expected {what}")
    kind = _KINDS.get(stat.S_IFMT(mode), "not a file")
    raise InputError(where, None, f"not a regular file ({kind}); expected {what}")


def _os_error(where: str, err: OSError) -> InputError:
    if isinstance(err, FileNotFoundError):
        return InputError(where, None, "no such file")
    if isinstance(err, PermissionError):
        return InputError(where, None, "permission denied")
    return InputError(where, None, f"cannot read the file ({err.strerror or err})")


def read_input_bytes(where: str, path: str | os.PathLike[str], limit: int, what: str) -> bytes:
    """At most ``limit + 1`` bytes of the regular file ``path`` (more than ``limit`` means the
    file is too large: the caller says so in its own words). ``what`` names the expected input
    in errors ("a scenario file"). Anything but a regular file is refused before it is read."""
    try:
        _refuse_kind(where, os.stat(path).st_mode, what)
        # O_NONBLOCK: should the path turn into a FIFO after the stat, open still returns
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        raise _os_error(where, err) from None
    with os.fdopen(fd, "rb") as handle:
        try:
            _refuse_kind(where, os.fstat(fd).st_mode, what)
            return handle.read(limit + 1)
        except OSError as err:
            raise _os_error(where, err) from None


# --------------------------------------------------------------------------------------------
# The loader
# --------------------------------------------------------------------------------------------


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def _shown_key(key: Any) -> str:
    """A mapping key as a message quotes it: ``'name'``, ``1``, never more than ~60 characters."""
    if isinstance(key, str):
        return repr(shorten(key))
    if key is None or isinstance(key, (bool, int, float)):
        return shorten(repr(key))
    return f"a {type(key).__name__}"


class _Loader(yaml.SafeLoader):
    """SafeLoader with the alias and duplicate-key checks; ``where`` names the file."""

    def __init__(self, stream: Any, where: str) -> None:
        super().__init__(stream)
        self.where, self.aliases = where, 0

    def compose_node(self, parent: Node | None, index: Any) -> Node:
        if self.check_event(AliasEvent):
            self.aliases += 1
            if self.aliases > MAX_ALIASES:
                raise InputError(self.where, None, f"{_BOMB}: more than {MAX_ALIASES} aliases")
        return super().compose_node(parent, index)

    def compose_mapping_node(self, anchor: str | None) -> Node:
        node = super().compose_mapping_node(anchor)
        self._refuse_duplicates(node)
        return node

    def compose_document(self) -> Node:
        node = super().compose_document()
        if self.aliases:                 # without aliases the tree is no larger than the file
            self._refuse_expansion(node)
        return node

    def _refuse_duplicates(self, node: MappingNode) -> None:
        """Duplicate keys as written (merge keys ``<<`` may be overridden, as YAML says)."""
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, ScalarNode) or key_node.tag == MERGE_TAG:
                continue                 # a complex key: rare, and compared by PyYAML itself
            key = self.construct_object(key_node)
            try:
                duplicate = key in seen
            except TypeError:            # unhashable: PyYAML reports it when constructing
                continue
            if duplicate:
                line = key_node.start_mark.line + 1
                raise InputError(self.where, None, f"duplicate key {_shown_key(key)} (line {line})")
            seen.add(key)

    def _refuse_expansion(self, root: Node) -> None:
        """The node count once every alias is expanded, computed once per shared node."""
        sizes: dict[int, int] = {}
        inside: set[int] = set()         # the nodes being walked: meeting one again is a cycle
        stack: list[tuple[Node, bool]] = [(root, False)]
        while stack:
            node, done = stack.pop()
            key = id(node)
            if done:
                inside.discard(key)
                sizes[key] = 1 + sum(sizes[id(c)] for c in _children(node))
                if sizes[key] > MAX_EXPANDED_NODES:
                    raise InputError(self.where, None, f"{_BOMB}: they expand to more than "
                                                       f"{MAX_EXPANDED_NODES} values")
            elif key in inside:
                line = node.start_mark.line + 1
                raise InputError(self.where, None, f"an alias refers to the node it is in (line {line})")
            elif key not in sizes:
                inside.add(key)
                stack.append((node, True))
                stack.extend((c, False) for c in _children(node) if id(c) not in sizes)


# --------------------------------------------------------------------------------------------
# Loading, every failure one line
# --------------------------------------------------------------------------------------------


def load_yaml(where: str, data: bytes | str) -> Any:
    """The YAML document in ``data``; every way that fails is one InputError naming ``where``."""
    try:
        return _load(_Loader(data, where))     # the reader decodes as it is made: inside the try
    except InputError:
        raise
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        problem = err.problem or err.context or "syntax error"
        if err.context and err.problem and err.problem.startswith("but "):
            problem = f"{err.context}, {err.problem}"
        if mark is not None:
            at = f"line {mark.line + 1}, column {mark.column + 1}"
            raise InputError(where, at, f"invalid YAML: {problem}") from None
        raise InputError(where, None, f"invalid YAML: {problem}") from None
    except yaml.reader.ReaderError as err:
        raise InputError(where, None, f"not readable as text at byte {err.position} ({err.reason})") from None
    except yaml.YAMLError as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else "unreadable"
        raise InputError(where, None, f"invalid YAML: {shorten(first, 200)}") from None
    except RecursionError:
        raise InputError(where, None, "invalid YAML: nested too deeply") from None
    except Exception as err:  # noqa: BLE001 - a constructor choked on a value (e.g. 2024-13-45, a 5000-digit int)
        reason = str(err).split(";")[0].strip() or type(err).__name__
        raise InputError(where, None, f"invalid YAML: cannot read a value ({shorten(reason, 200)})") from None


def _load(loader: _Loader) -> Any:
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def read_yaml_file(where: str, path: str | os.PathLike[str], limit: int, what: str) -> Any:
    """The YAML document in the regular file ``path``, at most ``limit`` bytes; ``what`` names
    the expected input in errors ("a scenario file")."""
    data = read_input_bytes(where, path, limit, what)
    if len(data) > limit:
        raise InputError(where, None, f"too large for {what} (over {format_size(limit)})")
    return load_yaml(where, data)
