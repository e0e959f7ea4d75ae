import scrapy
from itemloaders.processors import Identity, MapCompose, TakeFirst
from scrapy.loader import ItemLoader
from w3lib.html import remove_tags


def remove_quotes(text):
    return text.strip(u"\u201c" u"\u201d")


class QuoteItem(scrapy.Item):
    text = scrapy.Field(
        input_processor=MapCompose(remove_tags, remove_quotes),
        output_processor=TakeFirst(),
    )
    author = scrapy.Field(
        input_processor=MapCompose(remove_tags, str.strip),
        output_processor=TakeFirst(),
    )
    author_url = scrapy.Field(output_processor=TakeFirst())
    tags = scrapy.Field(output_processor=Identity())


class QuotesSpider(scrapy.Spider):
    name = "quotes_fields"
    start_urls = ["http://quotes.toscrape.com/"]

    def parse(self, response):
        for quote in response.css("div.quote"):
            loader = ItemLoader(item=QuoteItem(), selector=quote, response=response)
            loader.add_css("text", ".text")
            loader.add_css("author", ".author")
            loader.add_value("author_url", response.urljoin(quote.css(".author + a::attr(href)").get()))
            loader.add_css("tags", ".tag::text")
            yield loader.load_item()
        next_page = response.css("li.next a::attr(href)").get()
        if next_page:
            yield response.follow(next_page, self.parse)
