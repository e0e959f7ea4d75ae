import scrapy
from scrapy import signals


class TagRequestsMiddleware:
    def __init__(self, stats):
        self.stats = stats

    @classmethod
    def from_crawler(cls, crawler):
        s = cls(crawler.stats)
        crawler.signals.connect(s.spider_opened, signal=signals.spider_opened)
        return s

    def process_request(self, request, spider):
        request.meta["tagged_by"] = "TagRequestsMiddleware"
        self.stats.inc_value("tagged_requests")
        return None

    def process_response(self, request, response, spider):
        return response

    def spider_opened(self, spider):
        spider.logger.info("Spider opened: %s" % spider.name)


class MiddlewareSpider(scrapy.Spider):
    name = "with_middleware"
    start_urls = ["http://quotes.toscrape.com/page/9/"]
    custom_settings = {
        "DOWNLOADER_MIDDLEWARES": {"quotes_middleware.TagRequestsMiddleware": 543},
    }

    def parse(self, response):
        for quote in response.css("div.quote"):
            yield {
                "author": quote.css(".author::text").get(),
                "tagged_by": response.meta.get("tagged_by"),
                "ua_setting_seen": bool(self.settings.get("USER_AGENT")),
            }
        next_page = response.css("li.next a::attr(href)").get()
        if next_page:
            yield response.follow(next_page, self.parse)
