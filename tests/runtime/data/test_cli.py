"""``python -m kaito_runtime.data fetch``: sources, env fallbacks, exit codes and messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from kaito_runtime.data import FetchError, copy_volume
from kaito_runtime.data._cli import main, parse_size
from tests.runtime.data.fileserver import serve_files


@pytest.fixture
def termination_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "termination-log"
    monkeypatch.setenv("KAITO_TERMINATION_LOG", str(path))
    monkeypatch.delenv("DATA_URLS", raising=False)
    monkeypatch.delenv("DATA_VOLUME_PATH", raising=False)
    monkeypatch.delenv("KAITO_ALLOW_LOCAL_URLS", raising=False)
    return path


def test_fetch_urls_from_flags(tmp_path: Path, termination_log: Path) -> None:
    dest = tmp_path / "data"
    with serve_files() as server:
        url = server.add("/train.jsonl", b'{"text": "hi"}\n')
        code = main(["fetch", "--dest", str(dest), "--url", url, "--allow-local"])
    assert code == 0
    assert (dest / "train.jsonl").read_bytes() == b'{"text": "hi"}\n'
    assert termination_log.read_text() == f"fetched 1 file(s), 15 bytes, into {dest}"


def test_upstream_env_names_are_honoured(
    tmp_path: Path, termination_log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dest = tmp_path / "data"
    with serve_files() as server:
        urls = [server.add("/a.csv", b"text\nx\n"), server.add("/b.csv", b"text\ny\n")]
        monkeypatch.setenv("DATA_URLS", " ".join(urls))
        monkeypatch.setenv("DATA_VOLUME_PATH", str(dest))
        monkeypatch.setenv("KAITO_ALLOW_LOCAL_URLS", "true")
        assert main(["fetch"]) == 0
    assert sorted(p.name for p in dest.iterdir()) == ["a.csv", "b.csv"]


def test_a_refused_url_exits_3_with_the_reason(tmp_path: Path, termination_log: Path) -> None:
    code = main(["fetch", "--dest", str(tmp_path), "--url", "http://127.0.0.1:1/a.parquet"])
    assert code == 3
    message = termination_log.read_text()
    assert message.startswith("input URL 'http://127.0.0.1:1/a.parquet' resolves to loopback")
    assert "\n" not in message


def test_an_unreachable_url_exits_3_naming_it(tmp_path: Path, termination_log: Path) -> None:
    with serve_files() as server:
        dead = server.url("/gone.parquet")
    code = main(
        ["fetch", "--dest", str(tmp_path), "--url", dead, "--allow-local", "--attempts", "1"]
    )
    assert code == 3
    assert f"could not download input URL {dead!r} after 1 attempts" in termination_log.read_text()


def test_no_source_is_a_configuration_error(tmp_path: Path, termination_log: Path) -> None:
    assert main(["fetch", "--dest", str(tmp_path)]) == 2
    assert "pass --url URL..., --volume PATH or --image IMAGE" in termination_log.read_text()


def test_a_volume_is_copied_file_by_file(tmp_path: Path, termination_log: Path) -> None:
    volume = tmp_path / "vol"
    (volume / "sub").mkdir(parents=True)
    (volume / "train.parquet").write_bytes(b"PAR1")
    (volume / "sub" / "more.json").write_bytes(b"[]")
    (volume / ".hidden").write_bytes(b"x")
    (volume / "left.part").write_bytes(b"x")
    dest = tmp_path / "data"
    assert main(["fetch", "--dest", str(dest), "--volume", str(volume)]) == 0
    assert sorted(str(p.relative_to(dest)) for p in dest.rglob("*") if p.is_file()) == [
        "sub/more.json",
        "train.parquet",
    ]
    again = copy_volume(volume, dest)
    assert all(f.skipped for f in again)


def test_a_volume_mounted_at_the_destination_is_used_in_place(tmp_path: Path) -> None:
    (tmp_path / "train.csv").write_text("text\nhello\n")
    files = copy_volume(tmp_path, tmp_path)
    assert [f.path.name for f in files] == ["train.csv"]


def test_an_empty_or_missing_volume_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="holds no files; add the dataset"):
        copy_volume(tmp_path, tmp_path / "data")
    with pytest.raises(FetchError, match="is not a directory"):
        copy_volume(tmp_path / "nope", tmp_path / "data")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("1024", 1024), ("10GiB", 10 * 1024**3), ("500MB", 500_000_000), ("1.5Ki", 1536)],
)
def test_sizes_parse_with_units(text: str, expected: int) -> None:
    assert parse_size(text) == expected
