"""ItemLoader (on itemloaders) against the bundled quotes site, and DictItem, with Scrapy's
documented behaviour as the expected result."""

from __future__ import annotations

from typing import Any

import pytest
from itemloaders.processors import Join, MapCompose, TakeFirst
from pydantic import Field as PydanticField

from crawler import DictItem, Field, Item, ItemLoader, Request
from crawler.demosite import expected_quotes
from crawler.shell import fetch_one

from .conftest import make_settings
from .servers import TestSite


class Quote(DictItem):
    text = Field(input_processor=MapCompose(str.strip), output_processor=TakeFirst())
    author = Field(output_processor=TakeFirst())
    tags = Field(output_processor=Join(","))


class QuoteModel(Item):
    text: str
    # itemloaders reads a field's processors from json_schema_extra, which pydantic types as
    # JSON only: a processor there is the documented use, not a JSON value.
    author: str = PydanticField(
        json_schema_extra={"input_processor": MapCompose(str.upper)}  # type: ignore[dict-item]
    )
    tags: list[str] = []


async def test_loader_on_the_quotes_site(site: TestSite) -> None:
    response = await fetch_one(make_settings(), Request(f"{site.url}/quotes/"))
    expected = expected_quotes(10)
    items = []
    for quote in response.css("div.quote"):
        loader = ItemLoader(item=Quote(), selector=quote, response=response)
        loader.add_css("text", "span.text::text")
        loader.add_css("author", "small.author::text")
        loader.add_css("tags", "div.tags a.tag::text")
        assert loader.context["response"] is response
        items.append(loader.load_item())
    assert [i["text"] for i in items] == [e["text"] for e in expected]
    assert [i["author"] for i in items] == [e["author"] for e in expected]
    # A quote without tags collected no value: the field is left unset, as in Scrapy.
    assert [i.get("tags") for i in items] == [",".join(e["tags"]) or None for e in expected]
    assert any("tags" not in i for i in items)


async def test_loader_api(site: TestSite) -> None:
    response = await fetch_one(make_settings(), Request(f"{site.url}/quotes/"))

    class QuoteLoader(ItemLoader):
        default_item_class = Quote
        default_output_processor = TakeFirst()
        author_in = MapCompose(str.lower)

    loader = QuoteLoader(response=response)
    loader.add_xpath("author", '//small[@class="author"]/text()')
    assert loader.get_output_value("author") == expected_quotes(1)[0]["author"].lower()
    loader.replace_value("author", "Someone")
    assert loader.get_collected_values("author") == ["someone"]
    nested = loader.nested_css("div.quote")
    nested.add_css("text", "span.text::text")
    item = loader.load_item()
    assert isinstance(item, Quote)
    assert item["text"] == expected_quotes(1)[0]["text"]
    # An empty Scrapy-style item class (the default) refuses every field, as in Scrapy.
    with pytest.raises(KeyError):
        plain = ItemLoader()
        plain.add_value("anything", "x")
        plain.load_item()


def test_loader_with_a_pydantic_model() -> None:
    class ModelLoader(ItemLoader):
        default_item_class = QuoteModel
        text_out = TakeFirst()
        author_out = TakeFirst()

    loader = ModelLoader()
    loader.add_value("text", ["first", "second"])
    loader.add_value("author", "ada")
    loader.add_value("tags", ["a", "b"])
    item = loader.load_item()
    assert isinstance(item, QuoteModel)
    assert item == QuoteModel(text="first", author="ADA", tags=["a", "b"])


async def test_csv_columns_are_the_declared_fields(site: TestSite, tmp_path: Any) -> None:
    import csv

    from crawler import Spider
    from crawler.http import Response
    from crawler.runner import run_spider

    from .conftest import crawl, make_settings

    class Quotes(Spider):
        name = "csvq"

        def parse(self, response: Response) -> Any:
            for quote in response.css("div.quote")[:2]:
                yield Quote(author=quote.css("small.author::text").get())

    Quotes.start_urls = [f"{site.url}/quotes/"]
    await run_spider(Quotes, make_settings(), output=str(tmp_path / "q.csv"), overwrite=True)
    with open(tmp_path / "q.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["text", "author", "tags"]
    assert rows[1] == ["", expected_quotes(1)[0]["author"], ""]
    await crawl(Quotes, tmp_path, output="q.jsonl")
    # JSON holds only the fields that were set, as Scrapy's exporters write them.
    assert (tmp_path / "q.jsonl").read_text().splitlines()[0].startswith('{"author":')
