import scrapy
from itemadapter import ItemAdapter


class BookItem(scrapy.Item):
    title = scrapy.Field()
    price = scrapy.Field()
    stock = scrapy.Field()


class PriceToFloatPipeline:
    def process_item(self, item, spider):
        adapter = ItemAdapter(item)
        if adapter.get("price"):
            adapter["price"] = float(adapter["price"].replace("£", ""))
        return item


class StockPipeline:
    def open_spider(self, spider):
        self.count = 0

    def close_spider(self, spider):
        spider.logger.info("stock pipeline saw %d items", self.count)

    def process_item(self, item, spider):
        self.count += 1
        item["stock"] = "In stock" in (item.get("stock") or "")
        return item


class BooksPipelineSpider(scrapy.Spider):
    name = "books_pipeline"
    start_urls = ["http://books.toscrape.com/catalogue/page-1.html"]
    custom_settings = {
        "ITEM_PIPELINES": {
            "books_pipeline.PriceToFloatPipeline": 300,
            "books_pipeline.StockPipeline": 400,
        },
    }

    def parse(self, response):
        for article in response.css("article.product_pod"):
            item = BookItem()
            item["title"] = article.css("h3 a::attr(title)").get()
            item["price"] = article.css(".price_color::text").get()
            item["stock"] = "".join(article.css(".availability::text").getall())
            yield item
        next_page = response.css("li.next > a::attr(href)").get()
        if next_page:
            yield scrapy.Request(response.urljoin(next_page))
