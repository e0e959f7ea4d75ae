from scrapy.linkextractors import LinkExtractor
from scrapy.spiders import CrawlSpider, Rule


class BooksCrawlSpider(CrawlSpider):
    name = "books_crawl"
    allowed_domains = ["books.toscrape.com"]
    start_urls = ["http://books.toscrape.com/"]

    rules = (
        Rule(LinkExtractor(restrict_css="article.product_pod h3"), callback="parse"),
        Rule(LinkExtractor(restrict_css="li.next"), follow=True),
    )

    def parse(self, response):
        yield {
            "title": response.css("h1::text").get(),
            "price": response.css(".price_color::text").get(),
            "category": response.xpath('//ul[@class="breadcrumb"]/li[3]/a/text()').get(),
        }
