import scrapy
from scrapy.linkextractors import LinkExtractor


class BooksLinksSpider(scrapy.Spider):
    name = "books_links"
    start_urls = ["http://books.toscrape.com/catalogue/category/books/travel_2/index.html",
                  "http://books.toscrape.com/catalogue/category/books/mystery_3/index.html"]

    book_links = LinkExtractor(restrict_xpaths='//article[@class="product_pod"]/h3',
                               deny=r"/category/")
    page_links = LinkExtractor(allow=r"page-\d+\.html", restrict_css="ul.pager")

    def parse(self, response):
        for link in self.book_links.extract_links(response):
            yield response.follow(link, callback=self.parse_book)
        for link in self.page_links.extract_links(response):
            yield response.follow(link, callback=self.parse)

    def parse_book(self, response):
        yield {
            "title": response.css("h1::text").get(),
            "description": response.xpath('//div[@id="product_description"]/following-sibling::p/text()').get(),
        }
