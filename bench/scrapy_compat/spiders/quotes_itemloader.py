import scrapy
from itemloaders.processors import Join, MapCompose, TakeFirst
from scrapy.loader import ItemLoader


class QuoteItem(scrapy.Item):
    text = scrapy.Field()
    author = scrapy.Field()
    tags = scrapy.Field()


class QuoteLoader(ItemLoader):
    default_item_class = QuoteItem
    default_output_processor = TakeFirst()
    text_in = MapCompose(lambda t: t.strip("\u201c\u201d"))
    author_in = MapCompose(str.strip, str.upper)
    tags_out = Join(", ")


class QuotesLoaderSpider(scrapy.Spider):
    name = "quotes_loader"
    start_urls = ["https://quotes.toscrape.com"]

    def parse(self, response):
        for quote in response.css("div.quote"):
            loader = QuoteLoader(selector=quote)
            loader.add_css("text", "span.text::text")
            loader.add_css("author", "small.author::text")
            loader.add_css("tags", "div.tags a.tag::text")
            yield loader.load_item()

        for href in response.css("li.next a::attr(href)"):
            yield response.follow(href, self.parse)
