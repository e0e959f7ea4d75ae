"""crawler.items: the pydantic Item base, its validation and the pipelines."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

import pytest
from itemadapter import ItemAdapter

from crawler import Item, Spider
from crawler.errors import DropItem
from crawler.items import (
    InvalidItem,
    ItemProcessor,
    LossyValues,
    PipelineFailed,
    is_item,
    to_dict,
    validate_item,
)

#: The spider the processors are built for (the pipelines here do not read it).
SPIDER = Spider()


class QuoteModel(Item):
    text: str
    author: str
    tags: list[str] = []


def test_native_item_answers_dict_access() -> None:
    item = QuoteModel(text="t", author="a")
    assert item["text"] == "t" and "author" in item and item.get("nope", 1) == 1
    item["author"] = "b"
    assert item.author == "b"
    with pytest.raises(KeyError):
        item["nope"] = 1
    assert set(item.keys()) == {"text", "author", "tags"}
    adapter: Any = ItemAdapter(item)
    assert adapter["text"] == "t"



class Priced(Item):
    url: str
    price: float


@dataclasses.dataclass
class PricedRecord:
    url: str
    price: float


def test_validation_takes_dicts_models_and_dataclasses() -> None:
    expected = Priced(url="http://e.com/", price=2.5)
    assert validate_item(Priced, {"url": "http://e.com/", "price": "2.5"}) == expected
    assert validate_item(Priced, PricedRecord("http://e.com/", 2.5)) == expected
    assert validate_item(Priced, expected) is expected
    invalid = validate_item(Priced, {"price": "cheap"})
    assert isinstance(invalid, InvalidItem) and invalid.item == {"price": "cheap"}
    assert sorted((e["loc"], e["type"]) for e in invalid.errors) == [
        (["price"], "float_parsing"), (["url"], "missing")]


def test_each_kind_of_invalid_item_is_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    processor = ItemProcessor(SPIDER, Priced, [])
    with caplog.at_level(logging.WARNING, logger="crawler.items"):
        for _ in range(3):
            processor.validate({"url": "http://e.com/"})  # price missing
        processor.validate({"url": "http://e.com/", "price": "x"})  # another kind
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "Invalid Priced item (price", "Invalid Priced item (price"]
    assert ItemProcessor(SPIDER, None, []).validate({"any": 1}) == {"any": 1}


class Double:
    def process_item(self, item: dict[str, Any], spider: Any) -> dict[str, Any]:
        return {**item, "n": item["n"] * 2}


class DropOdd:
    async def process_item(self, item: dict[str, Any], spider: Any) -> dict[str, Any]:
        if item["n"] % 4:
            raise DropItem("odd")
        return item


class Broken:
    def __init__(self) -> None:
        self.closed = False

    def process_item(self, item: Any, spider: Any) -> Any:
        raise KeyError("field")

    def close_spider(self, spider: Any) -> None:
        self.closed = True


class FailsToClose:
    def close(self, spider: Any) -> None:
        raise RuntimeError("close bug")


async def test_pipelines_run_in_order_and_a_drop_is_none() -> None:
    processor = ItemProcessor(SPIDER, None, [Double(), DropOdd()])
    assert await processor.run_pipelines({"n": 2}) == {"n": 4}
    assert await processor.run_pipelines({"n": 1}) is None  # 2 after Double: dropped


async def test_a_pipeline_error_names_the_pipeline_and_every_pipeline_closes() -> None:
    broken = Broken()
    processor = ItemProcessor(SPIDER, None, [FailsToClose(), broken])
    with pytest.raises(PipelineFailed, match=r"pipeline Broken failed: KeyError: 'field'"):
        await processor.run_pipelines({"n": 1})
    await processor.close()  # FailsToClose raises: logged, and Broken still closes
    assert broken.closed


@dataclasses.dataclass
class Row:
    n: int
    tags: list[str]


def test_to_dict_of_each_kind_of_item() -> None:
    plain = {"n": 1}
    assert to_dict(plain) is plain
    assert to_dict(Priced(url="u", price=1.0)) == {"url": "u", "price": 1.0}
    assert to_dict(Row(1, ["a"])) == {"n": 1, "tags": ["a"]}
    with pytest.raises(TypeError, match="not an item: int"):
        to_dict(3)
    assert is_item({}) and is_item(Row(1, [])) and not is_item(Row) and not is_item("x")


def test_lossy_values_warn_once_per_field_and_kind(caplog: pytest.LogCaptureFixture) -> None:
    lossy = LossyValues()
    with caplog.at_level(logging.WARNING, logger="crawler.items"):
        for _ in range(2):
            lossy.check({"a": float("nan"), "b": b"x", "c": 1.5, "d": "text"})
        lossy.check({"a": float("inf")})
    assert [r.getMessage() for r in caplog.records] == [
        "Item field 'a' holds NaN: written as null (warned once per field)",
        "Item field 'b' holds bytes: written as text decoded as UTF-8 (warned once per field)",
        "Item field 'a' holds infinity: written as null (warned once per field)"]
