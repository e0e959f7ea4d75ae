import logging

import scrapy


class LoggingSpider(scrapy.Spider):
    name = "logging_spider"
    allowed_domains = ["quotes.toscrape.com"]
    start_urls = ["http://quotes.toscrape.com/page/1/", "http://quotes.toscrape.com/page/5/"]

    def parse(self, response):
        self.log("Visited %s" % response.url)
        self.log("Response status %d" % response.status, level=logging.INFO)
        self.logger.info("Parse function called on %s", response.url)
        quotes = response.xpath("//div[@class='quote']")
        for quote in quotes:
            yield {
                "text": quote.xpath(".//span[@class='text']/text()").extract_first(),
                "tags": quote.xpath(".//meta[@class='keywords']/@content").extract_first(),
            }
