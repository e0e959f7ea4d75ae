import re

import scrapy
from scrapy.spiders import CrawlSpider, Rule
from scrapy.linkextractors import LinkExtractor


class BooksRulesSpider(CrawlSpider):
    name = "books_rules"
    allowed_domains = ["books.toscrape.com"]
    start_urls = ["http://books.toscrape.com/catalogue/category/books/fiction_10/index.html"]

    rules = [
        Rule(
            LinkExtractor(allow=r"catalogue/[^/]+_\d+/index\.html$", deny=r"/category/"),
            callback="parse_book",
            follow=False,
            process_links="limit_links",
        ),
        Rule(LinkExtractor(allow=r"fiction_10/page-\d+\.html")),
    ]

    def limit_links(self, links):
        return [link for link in links if not link.nofollow]

    def parse_start_url(self, response):
        return {"listing": response.url, "books": len(response.css("article.product_pod"))}

    def parse_book(self, response):
        match = re.search(r"_(\d+)/index\.html$", response.url)
        yield {"id": int(match.group(1)), "title": response.css("h1::text").get()}
