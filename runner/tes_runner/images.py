"""Container image references: the Docker/OCI grammar, checked in one place.

An executor's ``image`` ends up on a ``docker``/``podman`` command line, so anything
that is not a plain reference (``-v/:/host``, ``--privileged``, a space) must be
refused before it gets there: at the API (a 400) and again by the runtimes right
before they build an engine's arguments (a stored or resumed task skips the API).

The grammar is the one of ``distribution/reference``::

    reference  := name [ ":" tag ] [ "@" digest ]
    name       := [ domain "/" ] path-component [ "/" path-component ]*
    domain     := host [ ":" port ]        host: DNS name, IPv4 or [IPv6]
    path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
    tag        := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest     := algorithm ":" hex     e.g. sha256:<64 hex digits>
"""

from __future__ import annotations

import re

MAX_NAME_LENGTH = 255
"""Longest name (domain and path) engines accept."""

MAX_REFERENCE_LENGTH = 4096
"""Longest whole reference looked at (name, tag and digest)."""

_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = (
    rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
)
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"

_REFERENCE = re.compile(
    rf"(?P<name>(?:(?P<domain>{_DOMAIN})/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*)"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?",
    re.ASCII,
)
_SHA256 = re.compile(r"sha256:[0-9a-f]{64}", re.ASCII)
DEFAULT_REGISTRY = "docker.io"
"""Where an image without a registry host is pulled from (Docker Hub)."""


def image_reference_problem(reference: object) -> str | None:
    """Why ``reference`` is not a valid container image reference, or ``None`` if it is.

    Accepts what ``docker pull`` accepts, e.g. ``alpine``, ``ubuntu:22.04``,
    ``quay.io/biocontainers/samtools:1.17--h00cdaf9_0``, ``localhost:5000/x/y:tag``,
    ``ghcr.io/org/img@sha256:<64 hex>``.
    """
    if not isinstance(reference, str) or not reference:
        return "must be a non-empty image reference such as 'ubuntu:22.04'"
    if len(reference) > MAX_REFERENCE_LENGTH:
        return f"is longer than {MAX_REFERENCE_LENGTH} characters"
    if reference.startswith("-"):
        return "must not start with '-' (it would be read as an option of the container engine)"
    match = _REFERENCE.fullmatch(reference)
    if match is None:
        if reference.lower() != reference and _REFERENCE.fullmatch(_lower_path(reference)):
            return "repository names must be lower-case (e.g. 'ubuntu', not 'Ubuntu')"
        return (
            "is not a valid image reference: expected [registry[:port]/]name[:tag][@digest] "
            "with a lower-case name, e.g. 'ubuntu:22.04' or 'quay.io/org/tool:1.0'"
        )
    if len(match["name"]) > MAX_NAME_LENGTH:
        return f"has a name longer than {MAX_NAME_LENGTH} characters"
    digest = match["digest"]
    if digest and digest.lower().startswith("sha256:") and not _SHA256.fullmatch(digest):
        return "has a sha256 digest that is not 64 lower-case hex digits"
    return None


def image_registry(reference: str) -> str:
    """The registry host (and port, lower-case) ``reference`` is pulled from, as Docker
    reads it: the first path component when it has a ``.`` or ``:`` or is ``localhost``,
    else Docker Hub (:data:`DEFAULT_REGISTRY`)."""
    match = _REFERENCE.fullmatch(reference)
    name = match["name"] if match else reference
    first, sep, _ = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first.lower()
    return DEFAULT_REGISTRY


def _lower_path(reference: str) -> str:
    """``reference`` with its name lower-cased (tag and digest kept), for a better message."""
    name, sep, rest = reference.partition("@")
    head, colon, tag = name.rpartition(":")
    if colon and "/" not in tag:
        return f"{head.lower()}:{tag}{sep}{rest}"
    return f"{name.lower()}{sep}{rest}"
