import scrapy
from itemloaders.processors import MapCompose, TakeFirst
from scrapy.loader import ItemLoader


def parse_price(value):
    return float(value.replace("£", ""))


class Book(scrapy.Item):
    title = scrapy.Field(input_processor=MapCompose(str.strip), output_processor=TakeFirst())
    price = scrapy.Field(input_processor=MapCompose(parse_price), output_processor=TakeFirst())
    rating = scrapy.Field(
        input_processor=MapCompose(lambda c: c.split()[-1]), output_processor=TakeFirst()
    )


class BooksLoaderSpider(scrapy.Spider):
    name = "books_loader"
    start_urls = ["https://books.toscrape.com/catalogue/page-1.html"]
    custom_settings = {"CLOSESPIDER_PAGECOUNT": 0}

    def parse(self, response):
        for product in response.css("article.product_pod"):
            loader = ItemLoader(item=Book(), selector=product)
            loader.add_css("title", "h3 a::attr(title)")
            loader.add_css("price", ".price_color::text")
            loader.add_xpath("rating", './p[contains(@class, "star-rating")]/@class')
            yield loader.load_item()
        yield from response.follow_all(css="li.next a", callback=self.parse)
