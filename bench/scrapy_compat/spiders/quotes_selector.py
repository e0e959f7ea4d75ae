import scrapy
from scrapy.selector import Selector


class SelectorSpider(scrapy.Spider):
    name = "selector_spider"
    start_urls = ["http://quotes.toscrape.com/page/2/"]

    def parse(self, response):
        sel = Selector(response)
        for block in sel.xpath('//div[@class="quote"]').getall():
            quote = Selector(text=block)
            yield {
                "text": quote.css("span.text::text").get(),
                "keywords": quote.css("meta.keywords::attr(content)").get(),
            }
