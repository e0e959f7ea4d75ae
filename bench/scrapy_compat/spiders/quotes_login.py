import scrapy
from scrapy.http import FormRequest


class LoginSpider(scrapy.Spider):
    name = "quotes_login"
    start_urls = ["https://quotes.toscrape.com/login"]

    def parse(self, response):
        return FormRequest.from_response(
            response,
            formdata={"username": "john", "password": "secret"},
            callback=self.after_login,
        )

    def after_login(self, response):
        if "Logout" not in response.text:
            self.logger.error("Login failed")
            return
        for quote in response.css("div.quote"):
            yield {
                "author": quote.css("small.author::text").get(),
                "goodreads": quote.css('a[href*="goodreads.com"]::attr(href)').get(),
            }
        next_page = response.css("li.next a::attr(href)").get()
        if next_page:
            yield response.follow(next_page, self.after_login)
