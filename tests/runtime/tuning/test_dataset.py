"""Dataset discovery, formats, column errors, splits and the batch-size check."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
import pytest

from kaito_runtime.tuning import InputError
from kaito_runtime.tuning._config import DatasetSection
from kaito_runtime.tuning._dataset import detect_format, find_dataset_files, load_tuning_dataset

CHAT = [
    {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
    for i in range(10)
]


def _parquet(path: Path, rows: Sequence[Mapping[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_list(list(rows)).to_parquet(str(path))
    return path


def test_conversational_parquet_loads_and_splits(tmp_path: Path) -> None:
    _parquet(tmp_path / "train-00000-of-00001.parquet", CHAT)
    (tmp_path / "junk.parquet.part").write_bytes(b"partial")
    loaded = load_tuning_dataset(
        tmp_path, DatasetSection(train_test_split=0.8), cache_dir=tmp_path / ".c"
    )
    assert loaded.format.kind == "messages"
    assert loaded.eval is not None
    assert (len(loaded.train), len(loaded.eval)) == (8, 2)
    assert loaded.train.column_names == ["messages"]
    assert loaded.fingerprint.startswith("sha256:")
    assert [f.name for f in loaded.files] == ["train-00000-of-00001.parquet"]


def test_instruction_response_columns_become_prompt_completion(tmp_path: Path) -> None:
    rows = [{"instruction": f"do {i}", "output": f"done {i}", "id": i} for i in range(4)]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    config = DatasetSection(context_column="instruction", response_column="output")
    loaded = load_tuning_dataset(tmp_path, config, cache_dir=tmp_path / ".c")
    assert loaded.format.kind == "prompt_completion"
    assert sorted(loaded.train.column_names) == ["completion", "prompt"]
    assert loaded.eval is not None


def test_csv_text_datasets_drop_empty_rows(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text("text,other\nhello,1\n,2\nworld,3\n")
    loaded = load_tuning_dataset(
        tmp_path, DatasetSection(train_test_split=1), cache_dir=tmp_path / ".c"
    )
    assert loaded.format.kind == "text"
    assert sorted(loaded.train["text"]) == ["hello", "world"]
    assert loaded.eval is None


def test_missing_configured_columns_name_the_columns_found(tmp_path: Path) -> None:
    _parquet(tmp_path / "d.parquet", [{"question": "q", "answer": "a"}] * 3)
    with pytest.raises(InputError) as err:
        load_tuning_dataset(
            tmp_path, DatasetSection(messages_column="conversation"), cache_dir=tmp_path / ".c"
        )
    assert "no column conversation (configured by DatasetConfig.messages_column)" in str(err.value)
    assert "the columns found are: question, answer" in str(err.value)
    with pytest.raises(InputError, match=r"columns \(question, answer\) match no supported format"):
        load_tuning_dataset(tmp_path, DatasetSection(), cache_dir=tmp_path / ".c")


def test_malformed_messages_name_the_row(tmp_path: Path) -> None:
    rows = [*CHAT[:2], {"messages": [{"speaker": "x", "text": "y"}]}]
    (tmp_path / "d.json").write_text(json.dumps(rows))
    with pytest.raises(InputError, match=r"row 2 of the dataset's 'messages' column is not a list"):
        load_tuning_dataset(tmp_path, DatasetSection(shuffle_dataset=False), cache_dir=tmp_path)


def test_a_dataset_too_small_for_the_batch_size_says_so(tmp_path: Path) -> None:
    _parquet(tmp_path / "d.parquet", CHAT[:5])
    with pytest.raises(InputError) as err:
        load_tuning_dataset(
            tmp_path, DatasetSection(train_test_split=0.8), batch_size=8, cache_dir=tmp_path / ".c"
        )
    assert "the training split has 4 rows (of 5 in the dataset)" in str(err.value)
    assert "fewer than per_device_train_batch_size=8" in str(err.value)


def test_a_dataset_too_small_to_split_says_so(tmp_path: Path) -> None:
    _parquet(tmp_path / "d.parquet", CHAT[:1])
    with pytest.raises(InputError, match=r"has 1 rows, too few for train_test_split=0\.8"):
        load_tuning_dataset(tmp_path, DatasetSection(), cache_dir=tmp_path / ".c")


def test_discovery_refuses_mixed_formats_and_honours_dataset_path(tmp_path: Path) -> None:
    _parquet(tmp_path / "a.parquet", CHAT)
    (tmp_path / "b.csv").write_text("text\nx\n")
    with pytest.raises(InputError, match="files of several formats"):
        find_dataset_files(tmp_path, DatasetSection())
    assert find_dataset_files(tmp_path, DatasetSection(dataset_path="b.csv")) == (
        "csv",
        [tmp_path / "b.csv"],
    )
    # Upstream resolves dataset_path under /mnt, one level above the input directory.
    data_dir = tmp_path / "data"
    _parquet(data_dir / "x.parquet", CHAT)
    builder, files = find_dataset_files(data_dir, DatasetSection(dataset_path="data/x.parquet"))
    assert (builder, files) == ("parquet", [data_dir / "x.parquet"])


def test_upstream_style_names_with_the_extension_inside_are_found(tmp_path: Path) -> None:
    _parquet(tmp_path / "train.parquet_download_true", CHAT)
    assert find_dataset_files(tmp_path, DatasetSection())[0] == "parquet"


def test_an_empty_input_directory_names_what_it_found(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(InputError, match=r"no dataset file under .*\(found: readme.txt\)"):
        find_dataset_files(tmp_path, DatasetSection())


def test_format_detection_prefers_configured_then_conventional_columns() -> None:
    assert detect_format(["messages", "text"], DatasetSection()).kind == "messages"
    assert detect_format(["prompt", "completion"], DatasetSection()).kind == "prompt_completion"
    assert detect_format(["body"], DatasetSection(response_column="body")).renames == {
        "body": "text"
    }
