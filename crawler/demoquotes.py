"""The quotes site of the demo site, shaped like quotes.toscrape.com.

Pages of ``div.quote`` with ``li.next a``, tag pages (``tag/<tag>/page/N/``), author pages, a
login form (``login``, a hidden ``csrf_token``; logged-in pages show a Goodreads link per quote)
and the JSON API (``api/quotes?page=N``), all under a root (``/quotes/`` on the demo site).
:func:`expected_quotes` gives its items; the routes are in :func:`crawler.demosite.quotes_routes`.
"""

from __future__ import annotations

import collections
import html
import unicodedata
from dataclasses import dataclass
from typing import Any

from .demobooks import digest

__all__ = ["QUOTES_CSRF_TOKEN", "QUOTES_PER_PAGE", "QuotesSite", "expected_quotes"]

QUOTES_PER_PAGE = 10

_esc = html.escape

# Quotes: invented authors and sayings (no real person is misquoted).
_AUTHORS: tuple[tuple[str, str, str], ...] = (
    ("Marguerite Okonkwo", "March 03, 1921", "in Lagos, Nigeria"),
    ("Søren Lindqvist", "July 14, 1889", "in Aarhus, Denmark"),
    ("Zoë Castellanos", "January 30, 1950", "in Valparaíso, Chile"),
    ("Émile Fontaine", "October 09, 1862", "in Lyon, France"),
    ("Hiroshi Tanabe", "April 21, 1934", "in Sapporo, Japan"),
    ("Ada Whitcombe", "December 01, 1815", "in Bath, England"),
    ("Tomás Ferreira", "May 17, 1901", "in Porto, Portugal"),
    ("Ingrid Halvorsen", "August 08, 1944", "in Bergen, Norway"),
    ("Kwame Mensah", "June 06, 1958", "in Kumasi, Ghana"),
    ("Lucía Moreno", "February 11, 1977", "in Sevilla, Spain"),
    ("Priya Raman", "September 25, 1966", "in Chennai, India"),
    ("Oliver Stanhope", "November 19, 1899", "in Dunedin, New Zealand"),
)
_QUOTE_STARTS: tuple[str, ...] = (
    "A quiet mind", "Every small kindness", "The longest road", "An honest question",
    "Courage", "A good book", "Patience", "The future", "Laughter", "Curiosity",
)  # fmt: skip
_QUOTE_ENDS: tuple[str, ...] = (
    "is a garden that needs daily care", "is the lantern we carry into the dark",
    "begins with a single honest step", "never asks permission",
    "is worth more than certainty", "turns strangers into friends",
    "grows wherever it is watered", "is the music of an open door",
    "doesn't wait for tomorrow", "makes the ordinary feel new & strange",
)  # fmt: skip
_TAGS: tuple[str, ...] = (
    "life", "love", "courage", "books", "wisdom", "humor", "hope", "friendship", "truth",
    "change", "inspirational", "simile",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class _Quote:
    text: str  # with the curly quotes, as shown in span.text
    author: str
    tags: tuple[str, ...]


def _author_slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode("ascii")
    return "-".join("".join(c for c in word if c.isalnum()) for word in ascii_name.split())


def _quote(index: int) -> _Quote:
    """Quote number ``index`` (0-based). Pure function of the index."""
    d = digest("quote", index)
    start = _QUOTE_STARTS[index % 10]
    end = _QUOTE_ENDS[(index // 10 + index) % 10]  # bijective with `start` for index < 100
    suffix = f" (part {index // 100 + 1})" if index >= 100 else ""
    tags: list[str] = []
    for k in range(d[0] % 4):  # 0..3 tags; some quotes have none
        tag = _TAGS[d[1 + k] % len(_TAGS)]
        if tag not in tags:
            tags.append(tag)
    return _Quote(
        text=f"\u201c{start} {end}{suffix}.\u201d",
        author=_AUTHORS[d[5] % len(_AUTHORS)][0],
        tags=tuple(tags),
    )


def expected_quotes(n: int = 100) -> list[dict[str, Any]]:
    """The items of a quotes site of ``n`` quotes, in page order.

    Keys: ``text`` (str, including the curly quotes “…” exactly as in ``span.text``),
    ``author`` (str), ``tags`` (list[str], possibly empty).
    """
    return [
        {"text": q.text, "author": q.author, "tags": list(q.tags)}
        for q in (_quote(i) for i in range(n))
    ]

# --------------------------------------------------------------------------------------------
# Pages (markup follows quotes.toscrape.com)
# --------------------------------------------------------------------------------------------


def _quotes_frame(body: str, root: str = "/quotes/", user: str | None = None) -> str:
    account = (f'<a href="{root}logout">Logout</a>' if user
               else f'<a href="{root}login">Login</a>')
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
	<meta charset="UTF-8">
	<title>Quotes to Scrape</title>
    <link rel="stylesheet" href="{root}static/bootstrap.min.css">
    <link rel="stylesheet" href="{root}static/main.css">
</head>
<body>
    <div class="container">
        <div class="row header-box">
            <div class="col-md-8">
                <h1>
                    <a href="{root}" style="text-decoration: none">Quotes to Scrape</a>
                </h1>
            </div>
            <div class="col-md-4">
                <p>
                    {account}
                </p>
            </div>
        </div>
{body}
    </div>
    <footer class="footer">
        <div class="container">
            <p class="text-muted">
                Quotes by: <a href="https://www.goodreads.com/quotes">GoodReads.com</a>
            </p>
        </div>
    </footer>
</body>
</html>
"""


def _quote_html(q: _Quote, root: str = "/quotes/", logged_in: bool = False) -> str:
    tags = "".join(
        f'\n            <a class="tag" href="{root}tag/{t}/page/1/">{t}</a>\n' for t in q.tags
    )
    slug = _author_slug(q.author)
    goodreads = (f'\n        <a href="https://www.goodreads.com/author/show/{slug}">'
                 "(Goodreads page)</a>" if logged_in else "")
    return f"""
    <div class="quote" itemscope itemtype="http://schema.org/CreativeWork">
        <span class="text" itemprop="text">{_esc(q.text)}</span>
        <span>by <small class="author" itemprop="author">{_esc(q.author)}</small>
        <a href="{root}author/{slug}">(about)</a>{goodreads}
        </span>
        <div class="tags">
            Tags:
            <meta class="keywords" itemprop="keywords" content="{",".join(q.tags)}" /    >
            {tags}
        </div>
    </div>
"""


#: The CSRF token of the quotes site's login form (fixed: the site is deterministic).
QUOTES_CSRF_TOKEN = "qcsrf-5f0e1d2c3b4a"


class QuotesSite:
    """The quotes pages, with links under ``root`` (``/quotes/`` on the demo site, ``/`` where
    it stands in for quotes.toscrape.com): pages, tag pages, author pages, a login form and
    the ``api/quotes?page=N`` JSON of the infinite-scroll variant."""

    def __init__(self, n: int, root: str = "/quotes/") -> None:
        self.root = root
        self.quotes = [_quote(i) for i in range(n)]
        self.pages = max(1, -(-n // QUOTES_PER_PAGE))
        counts = collections.Counter(t for q in self.quotes for t in q.tags)
        self.top_tags = [t for t, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:10]]
        # The "Top Ten tags" box also holds a.tag links: a spider must scope its selector to
        # div.quote (div.tags a.tag) to get a quote's own tags.
        self.tag_box = "".join(
            f'\n            <span class="tag-item">\n            <a class="tag" '
            f'style="font-size: {28 - 2 * i}px" href="{root}tag/{t}/">{t}</a>\n'
            "            </span>\n"
            for i, t in enumerate(self.top_tags)
        )
        self.authors = {_author_slug(a[0]): a for a in _AUTHORS}

    def page(self, page: int, user: str | None = None) -> str | None:
        return self._listing(self.quotes, page, f"{self.root}page/", user, None)

    def tag(self, tag: str, page: int, user: str | None = None) -> str | None:
        quotes = [q for q in self.quotes if tag in q.tags]
        if not quotes:
            return None
        return self._listing(quotes, page, f"{self.root}tag/{tag}/page/", user, tag)

    def _listing(self, quotes: list[_Quote], page: int, base: str, user: str | None,
                 tag: str | None) -> str | None:
        pages = max(1, -(-len(quotes) // QUOTES_PER_PAGE))
        if page < 1:
            return None
        chunk = quotes[(page - 1) * QUOTES_PER_PAGE : page * QUOTES_PER_PAGE]
        body = ("".join(_quote_html(q, self.root, user is not None) for q in chunk)
                if chunk else "No quotes found!")
        prev = (
            f'\n            <li class="previous">\n                <a href="{base}'
            f'{page - 1}/"><span aria-hidden="true">&larr;</span> Previous</a>\n'
            "            </li>\n"
            if page > 1
            else ""
        )
        nxt = (
            f'\n            <li class="next">\n                <a href="{base}'
            f'{page + 1}/">Next <span aria-hidden="true">&rarr;</span></a>\n'
            "            </li>\n"
            if page < pages
            else ""
        )
        heading = (f'\n    <h3>Viewing tag: <a href="{self.root}tag/{tag}/page/1/">{tag}</a>'
                   "</h3>\n" if tag else "")
        return _quotes_frame(f"""{heading}
<div class="row">
    <div class="col-md-8">
{body}
    <nav>
        <ul class="pager">
            {prev}
            {nxt}
        </ul>
    </nav>
    </div>
    <div class="col-md-4 tags-box">
        <h2>Top Ten tags</h2>
        {self.tag_box}
    </div>
</div>
""", self.root, user)

    def author(self, slug: str, user: str | None = None) -> str | None:
        found = self.authors.get(slug)
        if found is None:
            return None
        name, born, where = found
        return _quotes_frame(f"""
<div class="author-details">
    <h3 class="author-title">{_esc(name)}</h3>
    <p><strong>Born:</strong> <span class="author-born-date">{born}</span>
    <span class="author-born-location">{_esc(where)}</span></p>
    <p><strong>Description:</strong></p>
    <div class="author-description">
        {_esc(name)} is an invented author of this sandbox; every quote here is made up.
    </div>
</div>
""", self.root, user)

    def login(self, error: str | None = None) -> str:
        """The login form, as on quotes.toscrape.com (a hidden csrf_token, username,
        password, a submit input)."""
        problem = f'\n    <p class="error">{_esc(error)}</p>' if error else ""
        return _quotes_frame(f"""{problem}
<form action="{self.root}login" method="post" accept-charset="utf-8" >
    <input type="hidden" name="csrf_token" value="{QUOTES_CSRF_TOKEN}">
    <div class="form-group">
        <label for="username">Username</label>
        <input type="text" class="form-control" id="username" name="username" />
    </div>
    <div class="form-group">
        <label for="username">Password</label>
        <input type="password" class="form-control" id="password" name="password" />
    </div>
    <input type="submit" value="Login" class="btn btn-primary" />
</form>
""", self.root)

    def api(self, page: int) -> dict[str, Any]:
        """``api/quotes?page=N``: the JSON of the infinite-scroll page."""
        chunk = self.quotes[(page - 1) * QUOTES_PER_PAGE : page * QUOTES_PER_PAGE]
        return {
            "has_next": page < self.pages,
            "page": page,
            "quotes": [
                {"author": {"name": q.author, "slug": _author_slug(q.author),
                            "goodreads_link": f"/author/show/{_author_slug(q.author)}"},
                 "tags": list(q.tags), "text": q.text}
                for q in chunk
            ],
            "tag": None,
            "top_ten_tags": [[t, 0] for t in self.top_tags],
        }

