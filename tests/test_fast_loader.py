"""The fast task loader never disagrees with the marshmallow schemas it stands in for.

For any document, ``fast_load_task`` either declines (``None``) or returns exactly
what the reference returns, in the same key order; it never accepts what the
reference rejects. And it does take the real submitters' documents, so the fast
path is the one that runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import ValidationError

from tes_core.schemas.fast import fast_load_task
from tes_core.schemas.limits import DEFAULT_LIMITS, TaskLimits
from tes_core.schemas.task import reference_load
from tests.submitters import SHARED_FIXTURES

FIXTURES = sorted(SHARED_FIXTURES.glob("*.json"))


# Bounds small enough for the generated documents to cross every one of them.
TIGHT = TaskLimits(executors=1, inputs=1, outputs=1, volumes=1, tags=1, items=2,
                   text_chars=10, arg_chars=4, content_bytes=4, cpu_cores=4, ram_gb=32.0,
                   disk_gb=4.0)


def reference(document: dict, limits: TaskLimits = DEFAULT_LIMITS) -> dict | None:
    """What the marshmallow schemas (plus the text and size checks) make of ``document``,
    or None."""
    try:
        return reference_load(document, limits)
    except ValidationError:
        return None


# Values that are right for some fields and wrong for others.
junk = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 3), st.integers(2**70, 2**71),
    st.floats(allow_nan=True, allow_infinity=True), st.just(""), st.just("/data/x"),
    st.just("relative/x"), st.just("/a/../b"), st.just("/out/*.txt"), st.just("/out"),
    st.just("FILE"), st.just("DIRECTORY"), st.just("file"), st.just("a\x00b"),
    st.just("\ud800"), st.just("é"), st.just("x" * 300), st.lists(st.just("a"), max_size=2),
    st.just({}), st.just({"k": "v"}), st.just({"k": None}), st.just({"k": 1}),
)
path = st.sampled_from(
    ["/data/in.txt", "/out/a.txt", "/out", "/out/*.txt", "/out/[ab].txt", "rel", "/x/../y"]
)


def mostly(value: object) -> st.SearchStrategy:
    """``value`` nine times in ten, else junk."""
    return st.integers(0, 9).flatmap(lambda n: junk if n == 0 else st.just(value))


def record(fields: dict) -> st.SearchStrategy[dict]:
    """A dict with some of ``fields`` (each a strategy), now and then junk or extras."""
    return st.fixed_dictionaries({}, optional={**fields, "unknown": junk}).flatmap(
        lambda d: st.fixed_dictionaries({k: mostly(v) for k, v in d.items()})
    )


executor = st.tuples(
    st.sampled_from(["alpine", "alpine", "alpine", ""]),
    st.sampled_from([["echo", "hi"], ["echo", "hi"], [], "echo hi", ["a", 1]]),
).flatmap(lambda required: record({
    "workdir": path, "stdin": path, "stdout": path, "stderr": path,
    "env": st.dictionaries(st.sampled_from(["A", "B"]), st.sampled_from(["1", "1", "x\x00"])),
    "ignore_error": st.booleans(),
}).map(lambda d: {"image": required[0], "command": required[1], **d}))
task_input = record({
    "name": st.just("in"), "url": st.sampled_from(["/src/a", "http://127.0.0.1/a", ""]),
    "path": path, "type": st.sampled_from(["FILE", "DIRECTORY", None]),
    "content": st.sampled_from(["hello", "", "nul\x00ok"]), "streamable": st.booleans(),
})
task_output = record({
    "url": st.sampled_from(["/dst/a", ""]), "path": path,
    "path_prefix": st.sampled_from(["/out", "/other"]),
    "type": st.sampled_from(["FILE", "DIRECTORY"]),
})
resources = record({
    "cpu_cores": st.integers(-1, 8), "ram_gb": st.floats(-1, 64), "disk_gb": st.integers(0, 9),
    "preemptible": st.booleans(), "zones": st.lists(st.just("z1"), max_size=2),
    "backend_parameters": st.dictionaries(st.just("network"), st.just("none")),
    "backend_parameters_strict": st.booleans(),
})
document = st.fixed_dictionaries(
    {"executors": st.lists(executor, max_size=2)},
    optional={
        "name": st.sampled_from(["t", "t\x00"]), "description": st.just("d"),
        "inputs": st.lists(st.one_of(task_input, junk), max_size=2),
        "outputs": st.lists(st.one_of(task_output, junk), max_size=2),
        "resources": st.one_of(resources, junk),
        "volumes": st.lists(st.one_of(path, junk), max_size=2),
        "tags": st.dictionaries(st.sampled_from(["a", "b" * 300]),
                                st.one_of(st.none(), st.just("v"), st.just(3))),
        "id": junk, "state": junk, "logs": junk,
    },
)


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document)
def test_fast_loader_agrees_with_the_schemas(doc: dict) -> None:
    fast = fast_load_task(doc)
    if fast is None:
        return
    expected = reference(doc)
    assert expected is not None, f"fast loader accepted what the schemas reject: {doc!r}"
    assert json.dumps(fast) == json.dumps(expected)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document)
def test_fast_loader_agrees_with_the_schemas_on_bounds(doc: dict) -> None:
    fast = fast_load_task(doc, TIGHT)
    if fast is None:
        return
    expected = reference(doc, TIGHT)
    assert expected is not None, f"fast loader accepted what the bounds refuse: {doc!r}"
    assert json.dumps(fast) == json.dumps(expected)


@pytest.mark.parametrize("fixture", FIXTURES, ids=lambda p: p.name)
def test_real_submitter_documents_take_the_fast_path(fixture: Path) -> None:
    doc = json.loads(fixture.read_text())
    fast = fast_load_task(doc)
    assert fast is not None
    assert json.dumps(fast) == json.dumps(reference(doc))


def test_the_generator_reaches_both_paths() -> None:
    """Guard against a strategy that only ever makes invalid documents."""
    seen = {"fast": 0, "declined": 0}

    @settings(max_examples=400, deadline=None)
    @given(document)
    def count(doc: dict) -> None:
        seen["fast" if fast_load_task(doc) is not None else "declined"] += 1

    count()
    assert seen["fast"] > 15 and seen["declined"] > 15, seen


def _at(size: int, over: bool) -> dict:
    """A task whose every bounded part is exactly at (or one past) :data:`TIGHT`."""
    extra = 1 if over else 0
    return {
        "name": "n" * (TIGHT.text_chars + extra),
        "executors": [{"image": "i", "command": ["a" * TIGHT.arg_chars] * size}],
    }


BOUNDARY = {
    "name": lambda over: _at(1, over),
    "args": lambda over: {"executors": [{"image": "i", "command": ["a"] * (2 + over)}]},
    "arg": lambda over: {"executors": [{"image": "i", "command": ["a" * (4 + over)]}]},
    "env": lambda over: {"executors": [{"image": "i", "command": ["a"],
                                        "env": {f"K{n}": "v" for n in range(2 + over)}}]},
    "env key": lambda over: {"executors": [{"image": "i", "command": ["a"],
                                            "env": {"K" * (10 + over): "v"}}]},
    "executors": lambda over: {"executors": [{"image": "i", "command": ["a"]}] * (1 + over)},
    "inputs": lambda over: {"executors": [{"image": "i", "command": ["a"]}],
                            "inputs": [{"path": "/i", "content": "é" * (2 + over)}]},
    "volumes": lambda over: {"executors": [{"image": "i", "command": ["a"]}],
                             "volumes": ["/v"] * (1 + over)},
    "tags": lambda over: {"executors": [{"image": "i", "command": ["a"]}],
                          "tags": {f"t{n}": "" for n in range(1 + over)}},
    "cpu": lambda over: {"executors": [{"image": "i", "command": ["a"]}],
                         "resources": {"cpu_cores": 4 + over}},
    "ram": lambda over: {"executors": [{"image": "i", "command": ["a"]}],
                         "resources": {"ram_gb": 32 + over * 0.5}},
}


@pytest.mark.parametrize("bound", sorted(BOUNDARY))
def test_both_loaders_take_a_task_at_a_bound_and_refuse_one_past_it(bound: str) -> None:
    at, past = BOUNDARY[bound](False), BOUNDARY[bound](True)
    fast = fast_load_task(at, TIGHT)
    assert fast is not None and json.dumps(fast) == json.dumps(reference(at, TIGHT))
    assert fast_load_task(past, TIGHT) is None
    assert reference(past, TIGHT) is None
