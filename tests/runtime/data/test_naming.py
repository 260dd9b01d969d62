"""File names from URLs: query stripped, safe characters, unique and stable."""

from __future__ import annotations

from kaito_runtime.data import file_name_for, file_names_for


def test_the_guide_url_keeps_its_parquet_name() -> None:
    url = (
        "https://huggingface.co/datasets/philschmid/dolly-15k-oai-style/resolve/main/data/"
        "train-00000-of-00001-54e3756291ca09c6.parquet?download=true"
    )
    assert file_name_for(url) == "train-00000-of-00001-54e3756291ca09c6.parquet"


def test_unsafe_names_are_sanitised() -> None:
    assert file_name_for("http://h/a%20b%2F..%2Fetc.csv") == "a_b_.._etc.csv"
    assert file_name_for("http://h/.hidden.json") == "hidden.json"
    assert file_name_for("http://h/") == "download"
    assert file_name_for("http://h/x.part") == "x_part"


def test_repeated_names_get_stable_suffixes() -> None:
    urls = ["http://a/d/train.parquet", "http://b/e/train.parquet?x=1", "http://c/train.parquet"]
    assert file_names_for(urls) == ["train.parquet", "train-1.parquet", "train-2.parquet"]
    assert file_names_for(urls) == file_names_for(list(urls))
