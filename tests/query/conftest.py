"""Databases loaded with the query datasets (``tests/data/query``), shared by a test module."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from couchlite import Database, DatabaseConfiguration
from couchlite.query.indexes import FullTextIndexConfiguration, ValueIndexConfiguration

DATA = Path(__file__).resolve().parents[1] / "data" / "query"


def load_cases() -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in (DATA / "cases.jsonl").read_bytes().splitlines()]


def dataset_indexes(dataset: str) -> list[dict[str, Any]]:
    for case in load_cases():
        if case["dataset"] == dataset:
            return list(case.get("setup", {}).get("indexes", []))
    return []


def load_dataset(db: Database, dataset: str, *, indexes: bool = True) -> None:
    """Each ``<scope>.<collection>.jsonl`` of the dataset into its collection, in file order,
    then the dataset's indexes (as the conformance cases had them)."""
    for path in sorted((DATA / dataset).glob("*.jsonl")):
        stem = path.stem
        scope, name = stem.split(".") if "." in stem else ("_default", "_default")
        collection = db.create_collection(name, scope)
        with db.in_batch():
            for line in path.read_bytes().splitlines():
                if not line.strip():
                    continue
                body = orjson.loads(line)
                doc_id = body.pop("_id")
                from couchlite import MutableDocument

                collection.save(MutableDocument(doc_id, body))
    if indexes:
        for spec in dataset_indexes(dataset):
            scope, name = spec["collection"].split(".")
            collection = db.collection(name, scope)
            assert collection is not None
            if spec["type"] == "value":
                config: Any = ValueIndexConfiguration(spec["expressions"])
            else:
                config = FullTextIndexConfiguration(
                    spec["expressions"],
                    language=spec.get("language"),
                    ignore_accents=bool(spec.get("ignoreAccents", False)),
                )
            collection.create_index(spec["name"], config)


@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Database]]:
    folder = tmp_path_factory.mktemp("query-datasets")
    dbs = {}
    for dataset in ("names", "travel"):
        db = Database(dataset, DatabaseConfiguration(directory=folder))
        load_dataset(db, dataset)
        dbs[dataset] = db
    yield dbs
    for db in dbs.values():
        db.close()
