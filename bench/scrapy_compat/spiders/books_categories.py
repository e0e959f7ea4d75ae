import scrapy


class CategoriesSpider(scrapy.Spider):
    name = "book_categories"
    start_urls = ["http://books.toscrape.com/"]

    def parse(self, response):
        for a in response.css("div.side_categories ul li ul li a")[:5]:
            category = a.css("::text").get().strip()
            yield response.follow(a, self.parse_category, cb_kwargs={"category": category})

    def parse_category(self, response, category):
        for book in response.css("article.product_pod"):
            yield {
                "category": category,
                "title": book.css("h3 a::attr(title)").get(),
                "price": book.css("p.price_color::text").get(),
            }
        next_page = response.css("li.next a::attr(href)").get()
        if next_page:
            yield response.follow(next_page, self.parse_category, cb_kwargs={"category": category})
