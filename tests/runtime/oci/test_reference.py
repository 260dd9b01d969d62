"""Image references parse the way docker parses them."""

from __future__ import annotations

import pytest

from kaito_runtime.oci import ImageReference, InvalidReferenceError, parse_reference

DIGEST = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "myacr.azurecr.io/adapters/phi-3:0.0.1",
            ImageReference("myacr.azurecr.io", "adapters/phi-3", "0.0.1"),
            id="acr-with-tag",
        ),
        pytest.param(
            "127.0.0.1:5000/a/b", ImageReference("127.0.0.1:5000", "a/b", "latest"), id="port"
        ),
        pytest.param(
            "localhost/adapter", ImageReference("localhost", "adapter", "latest"), id="localhost"
        ),
        pytest.param("ubuntu", ImageReference("docker.io", "library/ubuntu", "latest"), id="hub"),
        pytest.param(
            "ghcr.io/org/x@" + DIGEST,
            ImageReference("ghcr.io", "org/x", None, DIGEST),
            id="digest",
        ),
        pytest.param(
            "ghcr.io/org/x:1@" + DIGEST,
            ImageReference("ghcr.io", "org/x", "1", DIGEST),
            id="tag-and-digest",
        ),
    ],
)
def test_parse_reference(text: str, expected: ImageReference) -> None:
    assert parse_reference(text) == expected


def test_target_prefers_the_digest_and_hub_uses_its_api_host() -> None:
    ref = parse_reference("org/x:1@" + DIGEST)
    assert ref.target == DIGEST
    assert ref.api_host == "registry-1.docker.io"
    assert str(ref) == "docker.io/org/x:1@" + DIGEST


@pytest.mark.parametrize(
    ("text", "part"),
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("host.io/UPPER:1", "repository 'UPPER'", id="uppercase"),
        pytest.param("host.io/x@sha256:zz", "digest 'sha256:zz'", id="bad-digest"),
        pytest.param("host.io/x:bad tag", "tag 'bad tag'", id="bad-tag"),
    ],
)
def test_malformed_references_name_the_part(text: str, part: str) -> None:
    with pytest.raises(InvalidReferenceError, match=part):
        parse_reference(text)
