"""A backend parameter value the backend does not allow (``UnsupportedParameterValue``):
refused with 400 naming the field under ``backend_parameters_strict``, else dropped and said
in the notes that become the first attempt's system logs; other ``ValueError``s stay 400."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from tes_core.backends.base import UnsupportedParameterValue
from tes_core.errors import BadRequest
from tes_core.service import TaskService


class SizedBackend:
    """What the check asks of a backend: its parameters and their validation."""

    name = "sized"
    backend_parameters = {"vm_size": "a size", "zone": "a zone"}

    def validate_parameters(self, parameters: Mapping[str, str]) -> None:
        if parameters.get("zone") == "bad zone":
            raise ValueError("backend_parameters.zone='bad zone' is not a zone")
        for key in ("vm_size", "zone"):
            if parameters.get(key, "").startswith("huge"):
                raise UnsupportedParameterValue(key, f"backend_parameters.{key}="
                                                     f"{parameters[key]!r} is not allowed")


def service() -> TaskService:
    made = TaskService.__new__(TaskService)  # only the parameter check is exercised
    made.backend = SizedBackend()  # type: ignore[assignment]
    made._parameters = {k.lower(): k for k in SizedBackend.backend_parameters}
    return made


def check(parameters: dict[str, str], strict: bool) -> tuple[list[str], dict[str, str]]:
    task = {"resources": {"backend_parameters": parameters,
                          "backend_parameters_strict": strict}}
    notes = service()._check_backend_parameters(task)
    return notes, task["resources"]["backend_parameters"]


def test_strict_refuses_naming_the_parameter() -> None:
    with pytest.raises(BadRequest) as refused:
        check({"VM_SIZE": "huge-1", "zone": "a"}, strict=True)
    message = "backend_parameters.vm_size='huge-1' is not allowed"
    assert str(refused.value) == message
    assert refused.value.errors == {"resources.backend_parameters.vm_size": [message]}


def test_lenient_drops_each_unsupported_value_and_says_so() -> None:
    notes, kept = check({"vm_size": "huge-1", "zone": "huge-2", "other": "x"}, strict=False)
    assert kept == {}
    assert notes[0].startswith("backend_parameters not supported by backend 'sized' were "
                               "ignored: other")
    assert notes[1:] == [
        "backend_parameters.vm_size='huge-1' is not allowed; ignored "
        "(backend_parameters_strict is not set)",
        "backend_parameters.zone='huge-2' is not allowed; ignored "
        "(backend_parameters_strict is not set)",
    ]


def test_a_malformed_value_is_refused_strict_or_not() -> None:
    for strict in (True, False):
        with pytest.raises(BadRequest, match="is not a zone"):
            check({"vm_size": "small", "zone": "bad zone"}, strict=strict)
    assert check({"vm_size": "small"}, strict=False) == ([], {"vm_size": "small"})
