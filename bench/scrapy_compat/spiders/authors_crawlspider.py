import scrapy
from scrapy.linkextractors import LinkExtractor
from scrapy.spiders import CrawlSpider, Rule


class AuthorItem(scrapy.Item):
    name = scrapy.Field()
    born = scrapy.Field()
    location = scrapy.Field()
    link_text = scrapy.Field()


class AuthorsSpider(CrawlSpider):
    name = "authors_crawl"
    allowed_domains = ["quotes.toscrape.com"]
    start_urls = ["http://quotes.toscrape.com/"]

    rules = (
        Rule(LinkExtractor(restrict_css="li.next")),
        Rule(LinkExtractor(allow="/author/", restrict_css=".quote"), callback="parse_author"),
    )

    def parse_author(self, response):
        item = AuthorItem()
        item["name"] = response.css("h3.author-title::text").get()
        item["born"] = response.css(".author-born-date::text").get()
        item["location"] = response.css(".author-born-location::text").get()
        item["link_text"] = response.meta.get("link_text")
        return item
