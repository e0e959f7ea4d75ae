"""crawler.dictitem: DictItem, the Scrapy-style item with declared fields."""

from __future__ import annotations

import pytest
from itemadapter import ItemAdapter
from itemloaders.processors import Join, MapCompose, TakeFirst

from crawler import DictItem, Field
from crawler.dictitem import register_adapter
from crawler.exporters import encode_item
from crawler.items import to_dict

register_adapter()  # as importing crawler.itemloader does


class Quote(DictItem):
    text = Field(input_processor=MapCompose(str.strip), output_processor=TakeFirst())
    author = Field(output_processor=TakeFirst())
    tags = Field(output_processor=Join(","))


def test_dictitem_is_a_dict_with_declared_keys() -> None:
    item = Quote(text="t")
    item["author"] = "a"
    assert dict(item) == {"text": "t", "author": "a"}
    assert set(Quote.fields) == {"text", "author", "tags"}
    assert "output_processor" in Quote.fields["author"]
    with pytest.raises(KeyError, match="does not support field: nope"):
        item["nope"] = 1
    with pytest.raises(KeyError):
        _ = item["tags"]  # declared, never set
    with pytest.raises(AttributeError, match=r"Use item\['text'\]"):
        _ = item.text
    with pytest.raises(AttributeError):
        item.text = "x"  # type: ignore[assignment]
    assert item.copy() == item and item.copy() is not item

    class Child(Quote):
        extra = Field()

    assert set(Child.fields) == {"text", "author", "tags", "extra"}
    # Exported as a plain dict, in every format.
    assert to_dict(item) == {"text": "t", "author": "a"}
    assert encode_item(to_dict(item)).startswith(b"{")
    assert ItemAdapter(item).field_names() is not None



def test_the_adapter_is_registered_once() -> None:
    before = len(list(ItemAdapter.ADAPTER_CLASSES))
    register_adapter()
    assert len(list(ItemAdapter.ADAPTER_CLASSES)) == before
    assert ItemAdapter.is_item(Quote()) and ItemAdapter.is_item_class(Quote)
    assert ItemAdapter(Quote(text="t")).get_field_meta("author")["output_processor"]
