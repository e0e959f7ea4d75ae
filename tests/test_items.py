"""crawler.items: the pydantic Item base, its validation and the pipelines."""

from __future__ import annotations

from typing import Any

import pytest
from itemadapter import ItemAdapter

from crawler import Item


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

