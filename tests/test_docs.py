"""The plugin documentation keeps up with the code.

``docs/plugin_hooks.md`` has one section per hook whose heading is the hook's
exact signature, e.g. ``### `tes_register_backends(register)` ``; adding,
renaming or removing a hook or one of its arguments without updating the page
fails here. The ``Backend`` interface section must name every public member.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from tes_core import hookspecs
from tes_core.backends import base

DOCS = Path(__file__).resolve().parent.parent / "docs" / "plugin_hooks.md"
HOOK_HEADING = re.compile(r"^###\s+`(?P<name>tes_\w+)\((?P<args>[^)]*)\)`\s*$", re.MULTILINE)


def hook_specs() -> dict[str, list[str]]:
    """Every hook spec in ``tes_core.hookspecs``, with its argument names."""
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return {
        name: list(inspect.signature(function).parameters)
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if getattr(function, marker, None) is not None
    }


def documented_hooks() -> dict[str, list[str]]:
    """Hook headings in the docs, with the arguments they show."""
    found: dict[str, list[str]] = {}
    for match in HOOK_HEADING.finditer(DOCS.read_text()):
        args = [arg.strip() for arg in match["args"].split(",") if arg.strip()]
        assert match["name"] not in found, f"{match['name']} has two sections"
        found[match["name"]] = args
    return found


def section(title: str) -> str:
    """The text of the ``## title`` section, up to the next ``## `` heading."""
    text = DOCS.read_text()
    match = re.search(rf"^## {re.escape(title)}\s*$(?P<body>.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"docs/plugin_hooks.md has no '## {title}' section"
    return match["body"]


def test_hook_specs_are_found() -> None:
    assert "tes_register_backends" in hook_specs()
    assert set(hook_specs()) <= set(hookspecs.__all__), "export every hook in __all__"


@pytest.mark.parametrize("hook", sorted(hook_specs()))
def test_every_hook_has_a_section_with_its_exact_signature(hook: str) -> None:
    documented = documented_hooks()
    expected = f"### `{hook}({', '.join(hook_specs()[hook])})`"
    assert hook in documented, f"docs/plugin_hooks.md needs a section headed {expected}"
    assert documented[hook] == hook_specs()[hook], f"update the heading to {expected}"


def test_every_documented_hook_exists() -> None:
    gone = set(documented_hooks()) - set(hook_specs())
    assert not gone, f"docs/plugin_hooks.md documents hooks that no longer exist: {sorted(gone)}"


def test_every_hook_section_says_firstresult_and_has_an_example() -> None:
    text = DOCS.read_text()
    headings = list(HOOK_HEADING.finditer(text))
    for index, heading in enumerate(headings):
        end = headings[index + 1].start() if index + 1 < len(headings) else len(text)
        body = text[heading.end():end].split("\n## ", 1)[0]
        name = heading["name"]
        assert "**firstresult:**" in body, f"say whether {name} is firstresult"
        assert f"def {name}(" in body, f"give an example implementation of {name}"
        for arg in hook_specs().get(name, []):
            assert f"`{arg}`" in body, f"describe argument {arg} of {name}"


def public_backend_members() -> list[str]:
    """Public methods and class attributes that ``Backend`` defines."""
    names = [name for name in vars(base.Backend) if not name.startswith("_")]
    names += list(getattr(base.Backend, "__annotations__", {}))
    return sorted({name for name in names if not name.startswith("_")})


@pytest.mark.parametrize("member", public_backend_members())
def test_every_public_backend_member_is_documented(member: str) -> None:
    assert re.search(rf"^#### `{member}(\(|`)", section("The `Backend` interface"), re.M), (
        f"docs/plugin_hooks.md: give Backend.{member} a '#### `{member}...`' heading "
        "in 'The `Backend` interface'"
    )


@pytest.mark.parametrize(
    "cls", [base.TaskRecord, base.Observation, base.BackendContext], ids=lambda c: c.__name__
)
def test_every_field_of_the_backend_types_is_documented(cls: type) -> None:
    text = section("The `Backend` interface")
    missing = [name for name in cls.__dataclass_fields__ if f"`{name}`" not in text]
    assert not missing, f"docs/plugin_hooks.md: describe {cls.__name__} fields {missing}"


@pytest.mark.parametrize(
    "title",
    [
        "Entry points",
        "`TES_DISABLED_PLUGINS`",
        "When a plugin fails to load",
        "`tes-server plugins`",
    ],
)
def test_the_plugin_machinery_has_its_sections(title: str) -> None:
    assert section(title).strip()
