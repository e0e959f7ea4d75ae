from scrapy.linkextractors import LinkExtractor
from scrapy.spiders import CrawlSpider, Rule


class QuotesCrawlSpider(CrawlSpider):
    name = "quotes_crawl"
    allowed_domains = ["quotes.toscrape.com"]
    start_urls = ["https://quotes.toscrape.com"]

    rules = (
        Rule(LinkExtractor(allow=r"/page/\d+/"), callback="parse_page", follow=True),
    )

    def parse_page(self, response):
        for quote in response.css("div.quote"):
            yield {
                "url": response.url,
                "text": quote.css("span.text::text").get(),
                "author": quote.css("small.author::text").get(),
            }
