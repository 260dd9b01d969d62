"""Cluster IP allocation as kube-apiserver does it: the kubernetes Service has the range's first
address, dynamic addresses come from above the low band, pinned ones anywhere in the range, an
address is free again when its Service is deleted (or when a create that took it never
committed), and a restarted server rebuilds what is taken from the stored Services."""

from __future__ import annotations

import ipaddress
import random

import pytest

from kaito.cluster import MemoryStorage, StatusError, start_cluster
from kaito.cluster._builtins import ServiceIPAllocator
from kaito.cluster._json import Obj

pytestmark = pytest.mark.anyio


def svc(name: str, cluster_ip: str | None = None) -> Obj:
    spec: Obj = {"ports": [{"port": 80}]}
    if cluster_ip:
        spec["clusterIP"] = cluster_ip
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


def test_dynamic_addresses_come_from_the_upper_band_until_it_is_full() -> None:
    allocator = ServiceIPAllocator("127.96.0.0/24", rng=random.Random(7))
    assert allocator.kubernetes_ip == "127.96.0.1"
    # A /24 has 254 usable addresses; the low (static) band is its first 16.
    upper = {allocator.allocate("ns", f"s{i}") for i in range(254 - 16)}
    assert all(int(ipaddress.ip_address(ip)) & 0xFF >= 17 for ip in upper)
    lower = {allocator.allocate("ns", f"t{i}") for i in range(15)}
    assert lower == {f"127.96.0.{i}" for i in range(2, 17)}
    with pytest.raises(StatusError) as full:
        allocator.allocate("ns", "one-more")
    assert full.value.code == 500
    assert "failed to allocate a serviceIP: range is full" in full.value.message


def test_an_address_of_a_create_that_never_committed_is_free_after_two_minutes() -> None:
    now = [0.0]
    allocator = ServiceIPAllocator("127.96.0.0/28", clock=lambda: now[0])
    taken = allocator.allocate("ns", "failed-create", "127.96.0.5")
    with pytest.raises(StatusError, match="provided IP is already allocated"):
        allocator.allocate("ns", "other", taken)
    now[0] = 121.0
    assert allocator.allocate("ns", "other", taken) == taken


def test_bad_ranges_are_refused_with_the_fix() -> None:
    with pytest.raises(ValueError, match=r"at least 16 addresses \(e.g. 127.96.0.0/16\)"):
        ServiceIPAllocator("127.96.0.0/30")
    with pytest.raises(ValueError, match="IPv4"):
        ServiceIPAllocator("fd00::/64")


async def test_a_restarted_server_keeps_addresses_and_hands_out_new_ones() -> None:
    async with start_cluster(network=False, service_cidr="127.97.0.0/24") as first:
        kubernetes = await first.client.get("v1", "Service", "kubernetes", "default")
        assert kubernetes["spec"]["clusterIPs"] == ["127.97.0.1"]
        before = {(await first.client.create(svc(f"s{i}")))["spec"]["clusterIP"] for i in range(20)}
        await first.client.delete("v1", "Service", "s0", "default")
        backup = first.store.backup()
        port = first.port
    async with start_cluster(
        network=False, service_cidr="127.97.0.0/24", store=MemoryStorage.restore(backup), port=port
    ) as second:
        kept = {
            s["spec"]["clusterIP"]
            for s in await second.client.list("v1", "Service", "default")
            if s["metadata"]["name"] != "kubernetes"
        }
        assert len(kept) == 19 and kept < before
        (freed,) = before - kept  # s0's, deleted before the backup
        reused = await second.client.create(svc("reuse", freed))
        assert reused["spec"]["clusterIPs"] == [freed]
        after = {(await second.client.create(svc(f"n{i}")))["spec"]["clusterIP"] for i in range(30)}
        assert not after & (kept | {freed}) and "127.97.0.1" not in after
        with pytest.raises(StatusError) as clash:
            await second.client.create(svc("clash", sorted(kept)[0]))
        assert clash.value.code == 422
