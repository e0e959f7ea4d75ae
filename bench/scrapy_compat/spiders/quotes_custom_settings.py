import scrapy


class QuotesSettingsSpider(scrapy.Spider):
    name = "quotes_settings"
    start_urls = ["http://quotes.toscrape.com/"]
    custom_settings = {
        "DEPTH_LIMIT": 2,
        "CONCURRENT_REQUESTS": 4,
        "CONCURRENT_REQUESTS_PER_DOMAIN": 2,
        "DOWNLOAD_DELAY": 0,
        "ROBOTSTXT_OBEY": False,
        "USER_AGENT": "Mozilla/5.0 (compatible; quotes-bot)",
        "RETRY_TIMES": 1,
        "LOG_LEVEL": "INFO",
    }

    def parse(self, response):
        for quote in response.css("div.quote"):
            yield {
                "depth": response.meta.get("depth"),
                "author": quote.css("small.author::text").get(),
            }
        next_page = response.css("li.next a::attr(href)").get()
        if next_page is not None:
            yield response.follow(next_page, callback=self.parse)
