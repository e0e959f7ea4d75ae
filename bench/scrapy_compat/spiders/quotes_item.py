import scrapy


class QuoteItem(scrapy.Item):
    text = scrapy.Field()
    author = scrapy.Field()
    tags = scrapy.Field()


class QuotesItemSpider(scrapy.Spider):
    name = "quotes_item"
    allowed_domains = ["quotes.toscrape.com"]
    start_urls = ["http://quotes.toscrape.com/"]

    def parse(self, response):
        for sel in response.xpath('//div[@class="quote"]'):
            item = QuoteItem()
            item["text"] = sel.xpath('./span[@class="text"]/text()').get()
            item["author"] = sel.xpath('.//small[@class="author"]/text()').get()
            item["tags"] = sel.xpath('.//a[@class="tag"]/text()').getall()
            yield item

        next_page = response.xpath('//li[@class="next"]/a/@href').get()
        if next_page:
            yield scrapy.Request(response.urljoin(next_page), callback=self.parse)
