import scrapy


class BackToStartSpider(scrapy.Spider):
    """Follows every pager link, including "Previous" back to the start page."""

    name = "back_to_start"
    start_urls = ["http://quotes.toscrape.com/page/1/"]
    custom_settings = {"DEPTH_LIMIT": 3}

    def parse(self, response):
        yield {"url": response.url, "quotes": len(response.css("div.quote"))}
        for href in response.css("ul.pager a::attr(href)").getall():
            yield response.follow(href, self.parse)
