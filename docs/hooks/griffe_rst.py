"""Griffe extension used by the documentation build (not part of the package).

The package's docstrings are numpy-style with reStructuredText roles (``:math:``, ``:func:``...) and
doctest examples that are run by pytest. For the Markdown site this extension rewrites, before the
docstrings are parsed: inline math roles to ``$...$``, ``.. math::`` blocks to ``$$...$$``,
cross-reference roles to inline code, and doctest lines to fenced ``pycon`` blocks.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:func|class|mod|meth|attr|data|obj|exc|const|py:\w+):`~?([^`]+)`")
_MATH = re.compile(r":math:`([^`]+)`")


def _short(target: str) -> str:
    return target.split(".")[-1] if not target.startswith("datamarket") else target


def _convert(text: str) -> str:
    text = _MATH.sub(lambda m: "$" + m.group(1).strip() + "$", text)
    text = _ROLE.sub(lambda m: "`" + _short(m.group(1)) + "`", text)
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.lstrip()
        indent = line[: len(line) - len(stripped)]
        if stripped.startswith(".. math::"):
            body = [stripped[len(".. math::") :].strip()]
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(indent + " ")):
                if lines[i].strip():
                    body.append(lines[i].strip())
                i += 1
            out += [indent + "$$", *(indent + b for b in body if b), indent + "$$", ""]
            continue
        if stripped.startswith(">>>"):
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i][len(indent) :] if lines[i].startswith(indent) else lines[i].strip())
                i += 1
            out += [indent + "```pycon", *(indent + b for b in block), indent + "```"]
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class RstToMarkdown(griffe.Extension):
    """Rewrite each docstring once, when its object is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _convert(obj.docstring.value)
