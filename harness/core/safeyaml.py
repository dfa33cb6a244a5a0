"""YAML as the harness reads it: safe, strict about duplicate keys, bounded in size and alias expansion.

Every YAML file the harness reads (task files, ablations, ``--config`` files, a trial's
``trial_config.yaml``, the lm-eval task files) goes through :class:`StrictLoader`:

* a key given twice in one mapping is refused (PyYAML keeps the last one silently: ``seed: 1`` then
  ``seed: 2`` would run seed 2 with nobody the wiser). Merge keys (``<<: *base``) still merge, and an
  explicit key still overrides a merged one;
* a document whose aliases would expand to more than :data:`MAX_NODES` values is refused before it
  is built (a "billion laughs" file is a few hundred bytes whose aliases expand to 10^9 values; every
  later walk over it, validation or a log line, would run for hours), and so is an alias that refers
  to a node containing it;
* a file larger than :data:`MAX_BYTES` is refused unread (:func:`check_size`): configs are a few KB.

>>> load("seed: 1\\nlr: 0.1\\n")
{'seed': 1, 'lr': 0.1}
>>> load("seed: 1\\nseed: 2\\n")
Traceback (most recent call last):
...
harness.core.safeyaml.DuplicateKeyError: line 2: duplicate key 'seed' (first at line 1); each key may appear once
>>> load("base: &b {x: 1}\\nrun:\\n  <<: *b\\n  x: 2\\n")
{'base': {'x': 1}, 'run': {'x': 2}}
>>> laughs = "a: &a [x, x, x, x, x, x, x, x, x, x]\\n" + "".join(
...     f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\\n"
...     for p, c in zip("abcdefgh", "bcdefghi"))
>>> load(laughs)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
harness.core.safeyaml.ExpansionError: aliases in this YAML expand to more than 100000 values ...
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Any

import yaml
from yaml.nodes import MappingNode, Node, SequenceNode

#: Values (scalars, lists, mappings, each counted where an alias repeats it) one YAML document may expand to.
MAX_NODES = 100_000
#: The largest config file read (bytes); the shipped task and ablation files are under 5 KB.
MAX_BYTES = 1 << 20
_MERGE_TAG = "tag:yaml.org,2002:merge"


class DuplicateKeyError(yaml.YAMLError):
    """A mapping gives the same key twice."""


class ExpansionError(yaml.YAMLError):
    """Aliases that expand beyond :data:`MAX_NODES` values, or an alias inside the node it names."""


def _children(node: Node) -> list[Node]:
    if isinstance(node, SequenceNode):
        return list(node.value)
    if isinstance(node, MappingNode):
        return [n for pair in node.value for n in pair]
    return []


def check_expansion(root: Node, limit: int = MAX_NODES) -> int:
    """The number of values ``root`` expands to (aliases counted each time they are used), computed
    without expanding anything; ExpansionError past ``limit`` or on a cycle.

    Iterative (a 100k-deep document must not blow the stack here) and linear in the distinct nodes.
    """
    size: dict[int, int] = {}
    open_: set[int] = set()      # nodes whose children are being counted: the ancestors of the current one
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, closing = stack.pop()
        key = id(node)
        if closing:
            open_.discard(key)
            total = 1 + sum(size[id(c)] for c in _children(node))
            if total > limit:
                raise ExpansionError(f"aliases in this YAML expand to more than {limit} values (line "
                                     f"{node.start_mark.line + 1}); configs are small: write the values out "
                                     "or use fewer nested aliases")
            size[key] = total
            continue
        if key in size:
            continue
        if key in open_:
            raise ExpansionError(f"an alias at line {node.start_mark.line + 1} refers to a node that contains "
                                 "it (a recursive structure)")
        open_.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node) if id(c) not in size)
    return size[id(root)]


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses duplicate keys and documents whose aliases expand too far."""

    def compose_document(self) -> Node:
        node = super().compose_document()
        if node is not None:
            check_expansion(node)
        return node

    def construct_mapping(self, node: Node, deep: bool = False) -> dict[Any, Any]:
        if isinstance(node, MappingNode):
            seen: dict[Any, Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == _MERGE_TAG:
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.setdefault(key, key_node)
                except TypeError:          # an unhashable key: the base class says so
                    continue
                if first is not key_node:
                    raise DuplicateKeyError(f"line {key_node.start_mark.line + 1}: duplicate key {key!r} (first "
                                            f"at line {first.start_mark.line + 1}); each key may appear once")
        return super().construct_mapping(node, deep=deep)


def load(stream: str | bytes | IO, loader: type[StrictLoader] = StrictLoader) -> Any:
    """The one document in ``stream``, loaded with ``loader`` (:class:`StrictLoader` or a subclass)."""
    return yaml.load(stream, Loader=loader)  # noqa: S506 - StrictLoader is a SafeLoader


def check_size(path: Path | str, limit: int = MAX_BYTES) -> None:
    """ValueError when the file at ``path`` is larger than ``limit`` bytes (checked before reading it)."""
    n = os.stat(path).st_size
    if n > limit:
        raise ValueError(f"{path} is {n:,} bytes, larger than the {limit:,} a config file may be; "
                         "configs are a few KB")
