import scrapy


class LoginFormdataSpider(scrapy.Spider):
    name = "login_formdata"
    login_url = "http://quotes.toscrape.com/login"
    start_urls = [login_url]

    def parse(self, response):
        token = response.css('input[name="csrf_token"]::attr(value)').extract_first()
        data = {
            "csrf_token": token,
            "username": "abc",
            "password": "abc",
        }
        yield scrapy.FormRequest(url=self.login_url, formdata=data, callback=self.parse_quotes)

    def parse_quotes(self, response):
        logged_in = bool(response.xpath('//a[@href="/logout"]'))
        for q in response.css("div.quote"):
            yield {
                "logged_in": logged_in,
                "text": q.css(".text::text").get(),
                "about": q.css(".author + a::attr(href)").get(),
            }
