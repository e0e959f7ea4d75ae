import scrapy
from scrapy.exceptions import DropItem


class DuplicatesPipeline:
    def __init__(self, field):
        self.field = field
        self.seen = set()

    @classmethod
    def from_crawler(cls, crawler):
        return cls(field=crawler.settings.get("DEDUP_FIELD", "author"))

    def process_item(self, item, spider):
        if item[self.field] in self.seen:
            raise DropItem(f"Duplicate item found: {item!r}")
        self.seen.add(item[self.field])
        return item


class AuthorsOnceSpider(scrapy.Spider):
    name = "authors_once"
    start_urls = ["http://quotes.toscrape.com/"]
    custom_settings = {
        "ITEM_PIPELINES": {"quotes_dedup_pipeline.DuplicatesPipeline": 100},
        "DEDUP_FIELD": "author",
    }

    def parse(self, response):
        for quote in response.css("div.quote"):
            yield {"author": quote.css("small.author::text").get()}
        for a in response.css("li.next a"):
            yield response.follow(a, callback=self.parse)
