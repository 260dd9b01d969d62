"""Property: replaying the watch from any resource version onto the list at that version gives the
final list (or 410 when the version left the history window)."""

from __future__ import annotations

from typing import Any

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from kaito.cluster import MemoryStorage, StatusError
from kaito.cluster._builtins import builtin_types
from kaito.cluster._meta import system_clock
from kaito.cluster._resource_types import Catalog
from kaito.cluster._rest import ListOptions, NoAdmission, RestApi, WatchOptions
from kaito.cluster._selectors import parse_label_selector

NAMES = ("a", "b", "c", "d")
operations = st.lists(
    st.tuples(
        st.sampled_from(("create", "update", "label", "delete")),
        st.sampled_from(NAMES),
        st.integers(0, 3),
    ),
    min_size=1,
    max_size=40,
)


def _api(window: int) -> tuple[RestApi, Any]:
    catalog = Catalog()
    for rt in builtin_types():
        catalog.add(rt)
    rest = RestApi(MemoryStorage(history_window=window), catalog, NoAdmission(), system_clock)
    rt = catalog.lookup("", "v1", "configmaps")
    return rest, rt


async def _run(ops: list[tuple[str, str, int]], window: int, selector: str) -> None:
    rest, rt = _api(window)
    namespaces = rest.catalog.lookup("", "v1", "namespaces")
    assert namespaces is not None
    await rest.create(
        namespaces, "", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}
    )
    labels = parse_label_selector(selector)

    async def state() -> dict[str, str]:
        listed = await rest.list(rt, "default", ListOptions(label_selector=labels))
        return {s.name: s.data.decode() for s in listed.items}

    history: list[tuple[int, dict[str, str]]] = [(rest.store.resource_version, await state())]
    for op, name, value in ops:
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": name, "labels": {"v": str(value)}},
            "data": {"value": str(value)},
        }
        try:
            if op == "create":
                await rest.create(rt, "default", body)
            elif op == "update":
                await rest.patch(
                    rt,
                    "default",
                    name,
                    "application/merge-patch+json",
                    {"data": {"value": str(value)}},
                )
            elif op == "label":
                await rest.patch(
                    rt,
                    "default",
                    name,
                    "application/merge-patch+json",
                    {"metadata": {"labels": {"v": str(value)}}},
                )
            else:
                await rest.delete(rt, "default", name)
        except StatusError as error:
            if error.code not in (404, 409):
                raise
        history.append((rest.store.resource_version, await state()))
    sentinel = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "zz-sentinel", "labels": {"v": "1"}},
    }
    end = await rest.create(rt, "default", sentinel)
    final = await state()
    for rv, at_rv in history:
        try:
            stream = await rest.watch(
                rt, "default", WatchOptions(label_selector=labels, resource_version=str(rv))
            )
        except StatusError as error:
            if error.code != 410:
                raise
            assert rv < end.rv - window, f"{rv} expired while still in the window"
            continue
        replayed = dict(at_rv)
        last = rv
        done = False
        while not done:
            batch = await stream.next()
            assert batch is not None
            for item in batch:
                assert item.obj is not None
                assert item.rv > last
                last = item.rv
                if item.type == "DELETED":
                    replayed.pop(item.obj.name)
                else:
                    replayed[item.obj.name] = item.obj.data.decode()
                done = item.rv >= end.rv
        stream.close()
        assert replayed == final, f"replay from {rv}"


@settings(max_examples=60, deadline=None)
@given(
    ops=operations, window=st.integers(2, 60), selector=st.sampled_from(("", "v in (1,2)", "v!=0"))
)
def test_watch_replay_from_any_version_matches_the_final_list(
    ops: list[tuple[str, str, int]], window: int, selector: str
) -> None:
    anyio.run(_run, ops, window, selector)
