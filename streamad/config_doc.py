"""The configuration reference, generated from the config schema (``streamad/config.py``).

Every key of every section, with its type, default and meaning; the meaning is the comment
written beside (or right above) the field in ``config.py``, so the schema is the one source.

    python -m streamad.config_doc            # print the reference (markdown)
    python -m streamad.config_doc --write README.md   # replace the marked section of a file

``tests/test_config.py`` fails when the README's section differs from this output or a field
has no comment.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
import typing
from pathlib import Path

from streamad import config as C

START, END = "<!-- config-reference:start -->", "<!-- config-reference:end -->"


def field_docs(cls: type) -> dict[str, str]:
    """field name -> its comment (inline, else the comment lines right above it)."""
    docs: dict[str, str] = {}
    above: list[str] = []
    for line in inspect.getsource(cls).splitlines()[1:]:
        s = line.strip()
        if s.startswith("#"):
            above.append(s.lstrip("# ").rstrip())
            continue
        m = re.match(r"(\w+)\s*:[^#]*?(?:#\s*(.*))?$", s)
        if m and m.group(1) in {f.name for f in dataclasses.fields(cls)}:
            parts = above + ([m.group(2).strip()] if m.group(2) else [])
            docs[m.group(1)] = " ".join(p for p in parts if p)
        above = [] if not s.startswith("#") else above
    return docs


def _type(tp) -> str:
    s = str(tp).replace("typing.", "")
    return {"<class 'str'>": "str", "<class 'int'>": "int", "<class 'float'>": "float",
            "<class 'bool'>": "bool"}.get(s, s)


def _default(f: dataclasses.Field) -> str:
    v = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
    return "null" if v is None else ("true" if v is True else "false" if v is False else repr(v).replace("'", ""))


def _row(*cells: str) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def reference() -> str:
    hints = typing.get_type_hints(C.Config)
    out = ["| key | type | default | meaning |", "|---|---|---|---|"]
    top = field_docs(C.Config)
    for f in dataclasses.fields(C.Config):
        tp = hints[f.name]
        if not dataclasses.is_dataclass(tp):
            out.append(_row(f"`{f.name}`", _type(tp), f"`{_default(f)}`", top.get(f.name, "")))
            continue
        docs, sub = field_docs(tp), typing.get_type_hints(tp)
        for g in dataclasses.fields(tp):
            out.append(_row(f"`{f.name}.{g.name}`", _type(sub[g.name]), f"`{_default(g)}`", docs.get(g.name, "")))
    return "\n".join(out) + "\n"


def undocumented() -> list[str]:
    missing = []
    for f in dataclasses.fields(C.Config):
        tp = typing.get_type_hints(C.Config)[f.name]
        if not dataclasses.is_dataclass(tp) and not field_docs(C.Config).get(f.name):
            missing.append(f.name)
        if dataclasses.is_dataclass(tp):
            docs = field_docs(tp)
            missing += [f"{f.name}.{g.name}" for g in dataclasses.fields(tp) if not docs.get(g.name)]
    return missing


def replace_section(text: str, ref: str) -> str:
    a, b = text.index(START) + len(START), text.index(END)
    return text[:a] + "\n" + ref + text[b:]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", metavar="FILE", help="replace the section between the config-reference markers")
    a = p.parse_args(argv)
    ref = reference()
    if a.write:
        path = Path(a.write)
        path.write_text(replace_section(path.read_text(), ref))
    else:
        sys.stdout.write(ref)
    return 0


if __name__ == "__main__":
    sys.exit(main())
