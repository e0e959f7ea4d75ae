import scrapy
from scrapy.utils.response import open_in_browser


class DebugSpider(scrapy.Spider):
    name = "debug_view"
    start_urls = ["http://quotes.toscrape.com/tag/love/"]
    debug = False

    def parse(self, response):
        if self.debug:
            open_in_browser(response)
        for quote in response.css("div.quote"):
            yield {"text": quote.css(".text::text").get(), "tag": "love"}
        next_page = response.css(".next a::attr(href)").get()
        if next_page:
            yield scrapy.Request(response.urljoin(next_page), callback=self.parse)
