"""A deterministic local web site for the test suite, the offline demo and the benchmarks.

One aiohttp application serves four things on 127.0.0.1 (never on a public address):

* ``/`` — a bookstore with the HTML structure of books.toscrape.com: listing pages
  (``/index.html``, ``/catalogue/page-N.html``), 50 category listings
  (``/catalogue/category/books/<slug>_<n>/index.html`` and ``page-N.html``) and one detail
  page per book (``/catalogue/<slug>_<id>/index.html``). Links are relative, exactly as on the
  real site, so a crawler that joins URLs wrongly goes astray. :func:`expected_books` gives the
  item every book page must produce.
* ``/quotes/`` — a quotes site shaped like quotes.toscrape.com (``div.quote``, ``li.next a``),
  with tag pages (``/quotes/tag/<tag>/page/N/``), author pages, a login form (``/quotes/login``,
  a hidden ``csrf_token``; logged-in pages show a Goodreads link per quote) and the JSON API
  (``/quotes/api/quotes?page=N``); :func:`expected_quotes` gives its items.
* ``/shop/`` — a scalable shop for large crawls: an index of listings, 20 products per listing,
  each product linking 5 other products. :func:`write_static_shop` writes the very same bytes
  as files (for a static web server in the benchmarks); :func:`expected_shop_items` gives the
  items.
* Fault endpoints for tests of the engine (status codes, redirects and loops, delays, hangs,
  trickles, dropped connections, flaky endpoints, echo, cookies), listed in :class:`TestSite`.

Everything is derived from integers by string formatting, so pages cost microseconds and the
same page is byte-identical across runs. Every request is recorded in :class:`SiteStats`
(hits per path, in-flight per host and overall with their maxima, a log).

Use it as ``async with TestSite() as site: ... site.url ...``, from sync code (subprocess
tests, the CLI demo) as ``with run_in_thread() as site: ...``, or standalone with
``python -m crawler.testsite --port 8000``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import concurrent.futures
import contextlib
import functools
import hashlib
import html
import ipaddress
import json
import logging
import os
import random
import socket
import ssl
import struct
import threading
import time
import unicodedata
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, NoReturn, Self

from aiohttp import web
from aiohttp.typedefs import Handler
from multidict import CIMultiDict

__all__ = [
    "BAD_LINKS",
    "Canned",
    "HostileServer",
    "Hit",
    "SiteStats",
    "TestSite",
    "bomb_body",
    "hostile_page",
    "expected_books",
    "expected_quotes",
    "expected_shop_items",
    "main",
    "run_in_thread",
    "write_static_shop",
]

logger = logging.getLogger(__name__)

BOOKS_PER_PAGE = 20
QUOTES_PER_PAGE = 10
PRODUCTS_PER_LISTING = 20

_HTML = {"Content-Type": "text/html; charset=utf-8"}
_TEXT = {"Content-Type": "text/plain; charset=utf-8"}

# --------------------------------------------------------------------------------------------
# Deterministic data
# --------------------------------------------------------------------------------------------

#: The 50 categories of books.toscrape.com, numbered 2..51 in their URLs as on the real site
#: (number 1 is the parent "Books" category, which lists every book).
CATEGORIES: tuple[str, ...] = (
    "Travel", "Mystery", "Historical Fiction", "Sequential Art", "Classics", "Philosophy",
    "Romance", "Womens Fiction", "Fiction", "Childrens", "Religion", "Nonfiction", "Music",
    "Default", "Science Fiction", "Sports and Games", "Add a comment", "Fantasy", "New Adult",
    "Young Adult", "Science", "Poetry", "Paranormal", "Art", "Psychology", "Autobiography",
    "Parenting", "Adult Fiction", "Humor", "Horror", "History", "Food and Drink",
    "Christian Fiction", "Business", "Biography", "Thriller", "Contemporary", "Spirituality",
    "Academic", "Self Help", "Historical", "Christian", "Suspense", "Short Stories", "Novels",
    "Health", "Politics", "Cultural", "Erotica", "Crime",
)  # fmt: skip

_ADJECTIVES: tuple[str, ...] = (
    "Silent", "Crimson", "Hidden", "Golden", "Broken", "Forgotten", "Wandering", "Midnight",
    "Painted", "Electric", "Distant", "Burning", "Frozen", "Gentle", "Hollow", "Infinite",
    "Last", "Lonely", "Lost", "Northern", "Quiet", "Restless", "Scarlet", "Secret",
    "Shattered", "Small", "Southern", "Stolen", "Strange", "Sudden", "Velvet", "Wild",
    "Winter", "Wooden", "Little", "Bright", "Curious", "Emerald", "Iron", "Paper",
)  # fmt: skip

# Some nouns are deliberately awkward: non-ASCII letters, several scripts, and characters that
# must be escaped in HTML text and attributes (& ' ").
_NOUNS: tuple[str, ...] = (
    "Attic", "River", "Garden", "Kingdom", "Letters", "Harbor", "Orchard", "Lighthouse",
    "Compass", "Mirror", "Library", "Mountain", "Voyage", "Cathedral", "Festival", "Island",
    "Labyrinth", "Meadow", "Archive", "Station", "Theory", "Promise", "Detective", "Daughter",
    "Engine", "Forest", "Horizon", "Journey", "Machine", "Ocean", "Café", "Fiancée",
    "Piñata", "Smörgåsbord", "Naïveté", "Déjà Vu", "Señorita", "Cats & Dogs", "Dragon's Egg",
    "東京 Nights", "Ελλάδα Summer", "Москва Winter", 'Lion "Heart"', "Crème Brûlée",
    "Fjord", "Saga", "Chronicle", "Gambit", "Requiem", "Sonnets",
)  # fmt: skip

_SUBTITLES: tuple[str, ...] = (
    "", ": A Novel", "", " (The Northern Trilogy #2)", "", "", ": Stories from the Road",
)  # fmt: skip
_RATING_WORDS: tuple[str, ...] = ("One", "Two", "Three", "Four", "Five")


def _digest(kind: str, number: int) -> bytes:
    """16 pseudo-random bytes, fixed forever for (kind, number)."""
    return hashlib.blake2b(f"{kind}:{number}".encode(), digest_size=16).digest()


def _slugify(text: str) -> str:
    """Django's ``slugify`` (ASCII): accents folded, punctuation dropped, spaces to hyphens."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    out: list[str] = []
    for ch in ascii_text.lower():
        if ch.isalnum() or ch == "_":
            out.append(ch)
        elif ch in " -" and out and out[-1] != "-":
            out.append("-")
    return "".join(out).strip("-_")


def _price_text(pence: int, currency: str) -> str:
    return f"{currency}{pence // 100}.{pence % 100:02d}"


def _price_decimal(pence: int) -> Decimal:
    return Decimal(f"{pence // 100}.{pence % 100:02d}")


@dataclass(frozen=True, slots=True)
class _Category:
    number: int  # 2..51, as in the real site's URLs
    name: str

    @property
    def dirname(self) -> str:
        return f"{_slugify(self.name)}_{self.number}"


_CATEGORY_LIST: tuple[_Category, ...] = tuple(
    _Category(number=i + 2, name=name) for i, name in enumerate(CATEGORIES)
)


@dataclass(frozen=True, slots=True)
class _Book:
    id: int
    title: str
    slug: str  # "<slugified title>_<id>", the directory of the detail page
    pence: int
    rating: int
    stock: int
    upc: str
    category: _Category
    image: str  # "ab/cd/<hash>.jpg" under media/cache/

    @property
    def path(self) -> str:
        return f"catalogue/{self.slug}/index.html"


def _book(book_id: int) -> _Book:
    """The book with this id (ids start at 1). Pure function of the id."""
    d = _digest("book", book_id)
    combos = len(_ADJECTIVES) * len(_NOUNS)
    # 7919 is prime, so id -> (adjective, noun) is a bijection within each run of `combos` ids;
    # a volume number keeps titles unique beyond that.
    index = ((book_id - 1) * 7919) % combos
    volume = (book_id - 1) // combos
    title = f"The {_ADJECTIVES[index // len(_NOUNS)]} {_NOUNS[index % len(_NOUNS)]}"
    title += _SUBTITLES[book_id % len(_SUBTITLES)]
    if volume:
        title += f", Volume {volume + 1}"
    image_hash = d.hex()
    return _Book(
        id=book_id,
        title=title,
        slug=f"{_slugify(title)}_{book_id}",
        pence=1000 + int.from_bytes(d[0:2], "big") % 5000,  # £10.00 .. £59.99
        rating=d[2] % 5 + 1,
        stock=d[3] % 22 + 1,
        upc=d[8:16].hex(),
        category=_CATEGORY_LIST[int.from_bytes(d[4:6], "big") % len(_CATEGORY_LIST)],
        image=f"{image_hash[0:2]}/{image_hash[2:4]}/{image_hash}.jpg",
    )


def expected_books(n: int = 1000) -> list[dict[str, Any]]:
    """The exact item of every book of a bookstore of ``n`` books, in id order.

    Keys: ``title`` (str, unescaped), ``price`` (Decimal, pounds), ``availability`` (int, the
    number in stock), ``rating`` (int 1..5), ``upc`` (16 hex digits), ``category`` (str),
    ``url`` (path relative to the site root: ``catalogue/<slug>_<id>/index.html``).
    """
    out: list[dict[str, Any]] = []
    for book_id in range(1, n + 1):
        b = _book(book_id)
        out.append(
            {
                "title": b.title,
                "price": _price_decimal(b.pence),
                "availability": b.stock,
                "rating": b.rating,
                "upc": b.upc,
                "category": b.category.name,
                "url": b.path,
            }
        )
    return out


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
    d = _digest("quote", index)
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


_SHOP_NOUNS: tuple[str, ...] = (
    "Widget", "Gadget", "Lamp", "Chair", "Kettle", "Backpack", "Notebook", "Clock", "Speaker",
    "Mug", "Blanket", "Bicycle Bell",
)  # fmt: skip
_RELATED_OFFSETS: tuple[int, ...] = (1, 7, 31, 211, 1499)


@dataclass(frozen=True, slots=True)
class _Product:
    id: int
    title: str
    pence: int
    sku: str


@functools.lru_cache(maxsize=1 << 16)
def _product(product_id: int) -> _Product:
    d = _digest("product", product_id)
    adjective = _ADJECTIVES[d[0] % len(_ADJECTIVES)]
    noun = _SHOP_NOUNS[d[1] % len(_SHOP_NOUNS)]
    return _Product(
        id=product_id,
        title=f"{adjective} {noun} {product_id}",
        pence=100 + int.from_bytes(d[2:4], "big") % 99900,
        sku=f"SKU-{product_id:08d}",
    )


def expected_shop_items(products: int = 20_000) -> list[dict[str, Any]]:
    """The item of every product page of a shop of ``products`` products, in id order.

    Keys: ``id`` (int), ``title`` (str, ``h1.title``), ``price`` (Decimal, ``span.price`` is
    ``$<price>``), ``sku`` (str, ``span.sku``), ``url`` (path ``/shop/p/<id>.html``).
    """
    out: list[dict[str, Any]] = []
    for product_id in range(1, products + 1):
        p = _product(product_id)
        out.append(
            {
                "id": p.id,
                "title": p.title,
                "price": _price_decimal(p.pence),
                "sku": p.sku,
                "url": f"/shop/p/{p.id}.html",
            }
        )
    return out


# --------------------------------------------------------------------------------------------
# Bookstore pages (markup follows books.toscrape.com, whitespace trimmed)
# --------------------------------------------------------------------------------------------

_esc = html.escape


def _truncate_words(text: str, words: int = 4) -> str:
    """Django's ``truncatewords``, which the real site applies to titles in listings."""
    parts = text.split()
    return text if len(parts) <= words else " ".join(parts[:words]) + " ..."


def _book_head(title: str, root: str) -> str:
    return f"""<!DOCTYPE html>
<!--[if lt IE 7]>      <html lang="en-us" class="no-js lt-ie9 lt-ie8 lt-ie7"> <![endif]-->
<!--[if IE 7]>         <html lang="en-us" class="no-js lt-ie9 lt-ie8"> <![endif]-->
<!--[if IE 8]>         <html lang="en-us" class="no-js lt-ie9"> <![endif]-->
<!--[if gt IE 8]><!--> <html lang="en-us" class="no-js"> <!--<![endif]-->
    <head>
        <title>
    {_esc(title)} | Books to Scrape - Sandbox
</title>
        <meta http-equiv="content-type" content="text/html; charset=UTF-8" />
        <meta name="created" content="24th Jun 2016 09:29" />
        <meta name="description" content="" />
        <meta name="viewport" content="width=device-width" />
        <meta name="robots" content="NOARCHIVE,NOCACHE" />
        <link rel="shortcut icon" href="{root}static/oscar/favicon.ico" />
        <link rel="stylesheet" type="text/css" href="{root}static/oscar/css/styles.css" />
    </head>
    <body id="default" class="default">
        <header class="header container-fluid">
            <div class="page_inner">
                <div class="row">
                    <div class="col-sm-8 h1"><a href="{root}index.html">Books to Scrape</a><small> We love being scraped!</small>
</div>
                </div>
            </div>
        </header>
"""


_BOOK_FOOT = """    <footer class="footer container-fluid">
    </footer>
    </body>
</html>
"""


def _stars(rating: int, indent: str) -> str:
    star = f'{indent}    <i class="icon-star"></i>\n'
    return f'{indent}<p class="star-rating {_RATING_WORDS[rating - 1]}">\n{star * 5}{indent}</p>\n'


def _pod(book: _Book, catalogue: str, root: str) -> str:
    """One ``article.product_pod`` of a listing; ``catalogue`` is the relative prefix of the
    catalogue/ directory from the listing page, ``root`` that of the site root."""
    href = f"{catalogue}{book.slug}/index.html"
    title = _esc(book.title)
    return f"""                    <li class="col-xs-6 col-sm-4 col-md-3 col-lg-3">
    <article class="product_pod">
            <div class="image_container">
                    <a href="{href}"><img src="{root}media/cache/{book.image}" alt="{title}" class="thumbnail"></a>
            </div>
{_stars(book.rating, "            ")}            <h3><a href="{href}" title="{title}">{_esc(_truncate_words(book.title))}</a></h3>
            <div class="product_price">
        <p class="price_color">{_price_text(book.pence, "£")}</p>
<p class="instock availability">
    <i class="icon-ok"></i>
        In stock
</p>
    <form>
        <button type="submit" class="btn btn-primary btn-block" data-loading-text="Adding...">Add to basket</button>
    </form>
            </div>
    </article>
</li>
"""


def _sidebar(category_dir: str) -> str:
    """The category menu; ``category_dir`` is the relative prefix of catalogue/category/."""
    items = "".join(
        f"""                        <li>
                            <a href="{category_dir}books/{c.dirname}/index.html">
                                {_esc(c.name)}
                            </a>
                        </li>
"""
        for c in _CATEGORY_LIST
    )
    return f"""            <aside class="sidebar col-sm-4 col-md-3 col-lg-3">
                <div id="promotions_left">
                </div>
    <div class="side_categories">
        <ul class="nav nav-list">
                <li>
                    <a href="{category_dir}books_1/index.html">
                        Books
                    </a>
                    <ul>
{items}                    </ul>
                </li>
        </ul>
    </div>
            </aside>
"""


@dataclass(frozen=True, slots=True)
class _ListingKind:
    """Where a listing page sits, as relative prefixes from it (they differ per directory)."""

    root: str  # the site root
    catalogue: str  # catalogue/
    category_dir: str  # catalogue/category/
    sidebar: str  # the rendered sidebar for this directory


def _listing_kind(root: str, catalogue: str, category_dir: str) -> _ListingKind:
    return _ListingKind(root, catalogue, category_dir, _sidebar(category_dir))


_HOME = _listing_kind("", "catalogue/", "catalogue/category/")
_CATALOGUE = _listing_kind("../", "", "category/")
_ALL_BOOKS = _listing_kind("../../../", "../../", "../")  # catalogue/category/books_1/
_CATEGORY = _listing_kind("../../../../", "../../../", "../../")  # .../books/<slug>_<n>/


def _pager(page: int, pages: int, prev_href: str, next_href: str) -> str:
    if pages <= 1:
        return ""
    prev = f'<li class="previous"><a href="{prev_href}">previous</a></li>' if page > 1 else ""
    nxt = f'<li class="next"><a href="{next_href}">next</a></li>' if page < pages else ""
    return f"""            <div>
                <ul class="pager">
                        {prev}
                    <li class="current">
                        Page {page} of {pages}
                    </li>
                        {nxt}
                </ul>
            </div>
"""


def _listing_page(
    kind: _ListingKind,
    heading: str,
    crumbs: str,
    books: Sequence[_Book],
    total: int,
    first: int,
    pager: str,
) -> str:
    """A listing: ``books`` are those of this page, ``first`` the 1-based rank of the first."""
    if total > len(books) or first > 1:
        results = (
            f"<strong>{total}</strong> results - showing <strong>{first}</strong> "
            f"to <strong>{first + len(books) - 1}</strong>."
        )
    else:
        results = f"<strong>{total}</strong> results."
    pods = "".join(_pod(b, kind.catalogue, kind.root) for b in books)
    return f"""{_book_head(heading, kind.root)}
<div class="container-fluid page">
    <div class="page_inner">
    <ul class="breadcrumb">
        <li>
            <a href="{kind.root}index.html">Home</a>
        </li>
{crumbs}    </ul>
        <div class="row">
{kind.sidebar}
            <div class="col-sm-8 col-md-9">
                <div class="page-header action">
                    <h1>{_esc(heading)}</h1>
                </div>
                <div id="messages">
                </div>
                <div id="promotions">
                </div>
<form method="get" class="form-horizontal">
    <div style="display:none">
    </div>
                {results}
</form>
    <section>
        <div class="alert alert-warning" role="alert"><strong>Warning!</strong> This is a demo website for web scraping purposes. Prices and ratings here were randomly assigned and have no real meaning.</div>
        <div>
            <ol class="row">
{pods}            </ol>
{pager}        </div>
    </section>
            </div>
        </div><!-- /row -->
    </div><!-- /page_inner -->
</div><!-- /container-fluid -->
{_BOOK_FOOT}"""


def _detail_page(book: _Book) -> str:
    root = "../../"
    title = _esc(book.title)
    price = _price_text(book.pence, "£")
    availability = f"In stock ({book.stock} available)"
    category = book.category
    description = (
        f"{title} is book number {book.id} of this sandbox. It was shelved under "
        f"{_esc(category.name)} by a deterministic hash, which also chose its price, its "
        "rating and how many copies are left. ...more"
    )
    return f"""{_book_head(book.title, root)}
<div class="container-fluid page">
    <div class="page_inner">
<ul class="breadcrumb">
    <li>
        <a href="{root}index.html">Home</a>
    </li>
        <li>
            <a href="../category/books_1/index.html">Books</a>
        </li>
        <li>
            <a href="../category/books/{category.dirname}/index.html">{_esc(category.name)}</a>
        </li>
    <li class="active">{title}</li>
</ul>
<div id="messages">
</div>
            <div class="content">
                <div id="promotions">
                </div>
                <div id="content_inner">
<article class="product_page"><!-- Start of product page -->
    <div class="row">
        <div class="col-sm-6">
<div id="product_gallery" class="carousel">
    <div class="thumbnail">
        <div class="carousel-inner">
            <div class="item active">
                <img src="{root}media/cache/{book.image}" alt="{title}" />
            </div>
        </div>
    </div>
</div>
        </div>
        <div class="col-sm-6 product_main">
            <h1>{title}</h1>
<p class="price_color">{price}</p>
<p class="instock availability">
    <i class="icon-ok"></i>
        {availability}
</p>
{_stars(book.rating, "    ")}            <hr/>
<div class="alert alert-warning" role="alert"><strong>Warning!</strong> This is a demo website for web scraping purposes. Prices and ratings here were randomly assigned and have no real meaning.</div>
        </div><!-- /col-sm-6 -->
    </div><!-- /row -->
        <div id="product_description" class="sub-header">
            <h2>Product Description</h2>
        </div>
        <p>{description}</p>
    <div class="sub-header">
        <h2>Product Information</h2>
    </div>
    <table class="table table-striped">
        <tr>
            <th>UPC</th><td>{book.upc}</td>
        </tr>
        <tr>
            <th>Product Type</th><td>Books</td>
        </tr>
            <tr>
                <th>Price (excl. tax)</th><td>{price}</td>
            </tr>
            <tr>
                <th>Price (incl. tax)</th><td>{price}</td>
            </tr>
            <tr>
                <th>Tax</th><td>£0.00</td>
            </tr>
        <tr>
            <th>Availability</th>
            <td>{availability}</td>
        </tr>
            <tr>
                <th>Number of reviews</th>
                <td>0</td>
            </tr>
    </table>
    <section>
        <div id="reviews" class="reviews">
        </div>
    </section>
</article><!-- End of product page -->
                </div>
            </div>
    </div><!-- /page_inner -->
</div><!-- /container-fluid -->
{_BOOK_FOOT}"""


class _Bookstore:
    """Renders the bookstore pages of ``n`` books; every method returns None for a 404."""

    def __init__(self, n: int) -> None:
        self.books: list[_Book] = [_book(i) for i in range(1, n + 1)]
        self.by_category: dict[str, list[_Book]] = {c.dirname: [] for c in _CATEGORY_LIST}
        for b in self.books:
            self.by_category[b.category.dirname].append(b)
        self.categories = {c.dirname: c for c in _CATEGORY_LIST}
        # Listing pages are few (about 2 * n / 20) and the costliest to render: keep them.
        self._listings: dict[tuple[str | None, int], str] = {}

    @staticmethod
    def _pages(count: int) -> int:
        return max(1, -(-count // BOOKS_PER_PAGE))

    def _slice(self, books: list[_Book], page: int) -> list[_Book]:
        start = (page - 1) * BOOKS_PER_PAGE
        return books[start : start + BOOKS_PER_PAGE]

    def catalogue(self, page: int, *, home: bool) -> str | None:
        """Page ``page`` of all products: the home page (page 1 only) or catalogue/page-N."""
        key = ("/" if home else "/catalogue/", page)
        found = self._listings.get(key)
        if found is None:
            found = self._render_catalogue(page, home=home)
            if found is not None:  # only existing pages are kept: the cache stays bounded
                self._listings[key] = found
        return found

    def _render_catalogue(self, page: int, *, home: bool) -> str | None:
        pages = self._pages(len(self.books))
        if not 1 <= page <= pages:
            return None
        if home:
            kind, prev_href, next_href = _HOME, "", "catalogue/page-2.html"
        else:
            kind, prev_href, next_href = (
                _CATALOGUE,
                f"page-{page - 1}.html",
                f"page-{page + 1}.html",
            )
        crumbs = '        <li class="active">All products</li>\n'
        return _listing_page(
            kind,
            "All products",
            crumbs,
            self._slice(self.books, page),
            len(self.books),
            (page - 1) * BOOKS_PER_PAGE + 1,
            _pager(page, pages, prev_href, next_href),
        )

    def category(self, dirname: str | None, page: int) -> str | None:
        """Page ``page`` of a category listing; ``dirname`` None is books_1, every book."""
        found = self._listings.get((dirname, page))
        if found is None:
            found = self._render_category(dirname, page)
            if found is not None:
                self._listings[(dirname, page)] = found
        return found

    def _render_category(self, dirname: str | None, page: int) -> str | None:
        if dirname is None:
            kind, name, books = _ALL_BOOKS, "Books", self.books
            crumbs = '        <li class="active">Books</li>\n'
        else:
            category = self.categories.get(dirname)
            if category is None:
                return None
            kind, name, books = _CATEGORY, category.name, self.by_category[dirname]
            crumbs = (
                '        <li>\n            <a href="../../books_1/index.html">Books</a>\n'
                f'        </li>\n        <li class="active">{_esc(name)}</li>\n'
            )
        pages = self._pages(len(books))
        if not 1 <= page <= pages:
            return None
        return _listing_page(
            kind,
            name,
            crumbs,
            self._slice(books, page),
            len(books),
            (page - 1) * BOOKS_PER_PAGE + 1 if books else 0,
            _pager(page, pages, f"page-{page - 1}.html", f"page-{page + 1}.html"),
        )

    def detail(self, slug: str) -> str | None:
        _, _, id_text = slug.rpartition("_")
        if not id_text.isdigit() or not 1 <= int(id_text) <= len(self.books):
            return None
        book = self.books[int(id_text) - 1]
        return _detail_page(book) if book.slug == slug else None


# --------------------------------------------------------------------------------------------
# Quotes pages (markup follows quotes.toscrape.com, under /quotes/)
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


class _QuotesSite:
    """The quotes pages, with links under ``root`` (``/quotes/`` on the test site, ``/`` where
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


def quotes_routes(app: web.Application, site: _QuotesSite) -> None:
    """Add the quotes site's routes under ``site.root`` to ``app``."""
    root = site.root
    cookie = "quotes_session"

    def user(request: web.Request) -> str | None:
        return request.cookies.get(cookie) or None

    async def page(request: web.Request) -> web.Response:
        return _html(site.page(_int_param(request, "page", 1), user(request)))

    async def tag(request: web.Request) -> web.Response:
        return _html(site.tag(request.match_info["tag"], _int_param(request, "page", 1),
                              user(request)))

    async def author(request: web.Request) -> web.Response:
        return _html(site.author(request.match_info["slug"], user(request)))

    async def add_slash(request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently(f"{request.path}/")

    async def login_form(request: web.Request) -> web.Response:
        return _html(site.login())

    async def login(request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("csrf_token") != QUOTES_CSRF_TOKEN:
            return _html(site.login("Error while logging in: invalid CSRF token."))
        name = str(form.get("username") or "")
        if not name:
            return _html(site.login("Error while logging in: please, provide your username."))
        response = web.HTTPFound(root)
        response.set_cookie(cookie, name, path="/")
        raise response

    async def logout(request: web.Request) -> web.Response:
        response = web.HTTPFound(root)
        response.del_cookie(cookie, path="/")
        raise response

    async def api(request: web.Request) -> web.Response:
        return web.json_response(site.api(_int_param(request, "page", 1)))

    r = app.router
    r.add_get(root, page)
    r.add_get(rf"{root}page/{{page:\d+}}/", page)
    r.add_get(f"{root}tag/{{tag}}", add_slash)  # as the real site's /tag/humor
    r.add_get(f"{root}tag/{{tag}}/", tag)
    r.add_get(rf"{root}tag/{{tag}}/page/{{page:\d+}}/", tag)
    r.add_get(f"{root}author/{{slug}}", author)
    r.add_get(f"{root}author/{{slug}}/", author)
    r.add_get(f"{root}login", login_form)
    r.add_post(f"{root}login", login)
    r.add_get(f"{root}logout", logout)
    r.add_get(f"{root}api/quotes", api)


# --------------------------------------------------------------------------------------------
# Shop pages (flat, root-relative links, identical bytes when written as static files)
# --------------------------------------------------------------------------------------------


def _shop_frame(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title} | Test Shop</title>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )


class _Shop:
    """Renders the shop of ``products`` products; every method returns None for a 404."""

    def __init__(self, products: int) -> None:
        self.products = products
        self.listings = -(-products // PRODUCTS_PER_LISTING)

    def index(self) -> str:
        links = "".join(
            f'<li><a class="listing" href="/shop/list/{n}.html">Listing {n}</a></li>\n'
            for n in range(1, self.listings + 1)
        )
        return _shop_frame(
            "Home",
            f'<h1>Test Shop</h1>\n<p class="count">{self.products} products</p>\n'
            f'<ul class="listings">\n{links}</ul>\n',
        )

    def listing(self, n: int) -> str | None:
        if not 1 <= n <= self.listings:
            return None
        first = (n - 1) * PRODUCTS_PER_LISTING + 1
        last = min(n * PRODUCTS_PER_LISTING, self.products)
        items = "".join(
            f'<li><a class="product" href="/shop/p/{i}.html">{_product(i).title}</a></li>\n'
            for i in range(first, last + 1)
        )
        pager = ""
        if n > 1:
            pager += f'<a class="prev" href="/shop/list/{n - 1}.html">previous</a>\n'
        if n < self.listings:
            pager += f'<a class="next" href="/shop/list/{n + 1}.html">next</a>\n'
        return _shop_frame(
            f"Listing {n}",
            f'<p><a href="/shop/">Test Shop</a></p>\n<h1>Listing {n}</h1>\n'
            f'<ul class="products">\n{items}</ul>\n<nav class="pager">\n{pager}</nav>\n',
        )

    def related(self, product_id: int) -> list[int]:
        out: list[int] = []
        for offset in _RELATED_OFFSETS:
            other = (product_id - 1 + offset) % self.products + 1
            if other != product_id and other not in out:
                out.append(other)
        return out

    def product(self, product_id: int) -> str | None:
        if not 1 <= product_id <= self.products:
            return None
        p = _product(product_id)
        listing = (product_id - 1) // PRODUCTS_PER_LISTING + 1
        related = "".join(
            f'<li><a class="related" href="/shop/p/{r}.html">{_product(r).title}</a></li>\n'
            for r in self.related(product_id)
        )
        return _shop_frame(
            p.title,
            f'<p><a href="/shop/">Test Shop</a> &gt; '
            f'<a class="listing" href="/shop/list/{listing}.html">Listing {listing}</a></p>\n'
            f'<div class="product">\n<h1 class="title">{p.title}</h1>\n'
            f'<p>Price: <span class="price">{_price_text(p.pence, "$")}</span></p>\n'
            f'<p>SKU: <span class="sku">{p.sku}</span></p>\n'
            f'<p class="description">{p.title} is product {p.id} of the test shop.</p>\n'
            f'</div>\n<h2>Related products</h2>\n<ul class="related">\n{related}</ul>\n',
        )

    def files(self) -> Iterator[tuple[str, str]]:
        """(path relative to the document root, page) for every page of the shop."""
        yield "shop/index.html", self.index()
        for n in range(1, self.listings + 1):
            page = self.listing(n)
            if page is not None:
                yield f"shop/list/{n}.html", page
        for i in range(1, self.products + 1):
            page = self.product(i)
            if page is not None:
                yield f"shop/p/{i}.html", page


def write_static_shop(directory: str | os.PathLike[str], products: int = 20_000) -> int:
    """Write the shop as static files under ``directory`` and return how many were written.

    Layout: ``shop/index.html``, ``shop/list/<n>.html``, ``shop/p/<id>.html``. Each file holds
    exactly the bytes :class:`TestSite` serves at the same path, so a static server (nginx with
    ``root <directory>;`` and the default ``index index.html;``) serves the same site, with
    ``/shop/`` as its index.
    """
    base = Path(directory)
    for sub in ("shop/list", "shop/p"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    count = 0
    for rel, page in _Shop(products).files():
        (base / rel).write_bytes(page.encode("utf-8"))
        count += 1
    return count


# --------------------------------------------------------------------------------------------
# Instrumentation
# --------------------------------------------------------------------------------------------


class Hit(NamedTuple):
    """One request as the server saw it."""

    time: float  #: time.monotonic() when the request arrived
    path: str  #: request path, without the query string
    host: str  #: host name from the Host header, lower-cased, port dropped


@dataclass(slots=True)
class SiteStats:
    """Counters kept by the site for every request (including 404s).

    Hosts are keyed by the Host header's host name without the port (``"127.0.0.1"``,
    ``"localhost"``), so one server reached under several names counts each name apart.
    A request is in flight from the moment its handler starts until it has returned, was
    cancelled because the client went away, or raised. ``log`` keeps the last million hits.
    """

    inflight: int = 0
    max_inflight: int = 0
    inflight_by_host: dict[str, int] = field(default_factory=dict)
    max_inflight_by_host: dict[str, int] = field(default_factory=dict)
    hits: collections.Counter[str] = field(default_factory=collections.Counter)
    log: collections.deque[Hit] = field(default_factory=lambda: collections.deque(maxlen=1_000_000))

    @property
    def total(self) -> int:
        """Number of requests received since the last reset."""
        return sum(self.hits.values())

    def reset(self) -> None:
        """Forget hits and log; maxima restart from what is in flight right now."""
        self.hits.clear()
        self.log.clear()
        self.max_inflight = self.inflight
        self.max_inflight_by_host = {h: n for h, n in self.inflight_by_host.items() if n}


def _host_name(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):  # [::1]:8080
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rpartition(":")[0] if ":" in host else host


# --------------------------------------------------------------------------------------------
# The application
# --------------------------------------------------------------------------------------------


def _html(page: str | None) -> web.Response:
    if page is None:
        raise web.HTTPNotFound()
    return web.Response(body=page.encode("utf-8"), headers=_HTML)


def _int_param(request: web.Request, name: str, default: int | None = None) -> int:
    raw = request.match_info.get(name, request.query.get(name))
    if raw is None:
        if default is None:
            raise web.HTTPBadRequest(text=f"missing parameter {name}")
        return default
    try:
        return int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"parameter {name} must be an integer") from None


def _float_param(request: web.Request, name: str, default: float) -> float:
    raw = request.match_info.get(name, request.query.get(name))
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=f"parameter {name} must be a number") from None
    if not 0 <= value <= 3600:
        raise web.HTTPBadRequest(text=f"parameter {name} must be within 0..3600")
    return value


def _check_loopback(host: str) -> str:
    """Return the address to bind for ``host``; refuse anything that is not loopback."""
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"TestSite binds IP literals only, got {host!r}") from None
    if not address.is_loopback:
        raise ValueError(f"TestSite never binds a non-loopback address, got {host!r}")
    return host


class TestSite:
    """The local test site, as an async context manager.

    ``TestSite(books=1000, quotes=100, shop_products=20_000, host="127.0.0.1", port=0)``:
    ``port=0`` picks a free port; ``ssl_context=`` serves https instead of http.
    ``hosts=("127.0.0.1", "127.0.0.2")`` binds several loopback
    addresses on the same port (Linux routes all of 127.0.0.0/8 to the loopback interface), so
    tests can reach one server as several hosts; with one bound address, ``127.0.0.1`` and
    ``localhost`` already are two host names for it. Only loopback addresses are accepted.

    Attributes once entered: ``url`` (``"http://127.0.0.1:PORT"``, no trailing slash),
    ``port``, ``stats`` (:class:`SiteStats`), ``url_for(path, host=None)``, ``reset_stats()``.

    Fault endpoints (any method unless noted):

    * ``/status/{code}``: answers that status; the body says ``status <code>``. ``?location=``
      adds a Location header.
    * ``/redirect/{n}``: ``n`` hops of ``302`` (``?status=301|303|307|308``) with a relative
      Location (``/redirect/{n-1}``), then ``/redirect/0`` answers 200.
    * ``/redirect-to?url=...&status=302``: one redirect to ``url``, as given.
    * ``/redirect-loop/{key}`` and ``/redirect-loop/{key}/b``: redirect to each other forever.
    * ``/delay/{seconds}``: answers 200 after the delay (at most 3600 s).
    * ``/hang``: accepts the request and never answers; when the site closes, the connection
      is cut without a response.
    * ``/headers-then-hang``: sends status and headers (``Content-Length: 100``), never a body.
    * ``/trickle?bytes=N&interval=1.0``: ``Content-Length: N``, then one byte per interval.
    * ``/drop``: closes the connection before sending anything. Note that aiohttp's client
      resends an idempotent request once on a dropped connection, so a GET shows 2 hits.
    * ``/truncated``: announces ``Content-Length: 100``, sends 10 bytes, closes.
    * ``/flaky/{key}?fail=N&status=503&retry_after=S``: the first N requests for ``key``
      answer ``status`` (with ``Retry-After: S`` when given), later ones 200 with JSON
      ``{"key": ..., "attempt": ...}``. Counters are per key and cleared by ``reset_stats()``.
    * ``/echo``: JSON ``{"method", "path", "url", "query", "headers", "cookies", "body"}``;
      header names are lower-cased, ``body`` is the request body decoded as UTF-8.
    * ``/set-cookie?name=value&...``: sets each pair as a cookie (path ``/``); JSON body.
    * ``/json``: a fixed JSON document (non-ASCII included).
    * ``/links?n=K``: an HTML page with K links ``/page/0`` .. ``/page/{K-1}``;
      ``/page/{name}`` (any name) a small page whose ``h1.page`` says ``Page {name}``.
    * ``/bytes/{n}``: ``n`` bytes of ``x`` (``?chunked=1``: no Content-Length).
    * ``/gzip-bomb/{n}``: a small gzip body (``Content-Encoding: gzip``) inflating to ``n``
      zero bytes (the same as ``/bomb/gzip/{n}``).
    * ``/bomb/{coding}/{n}``: a body inflating to ``n`` zero bytes with ``Content-Encoding``
      ``gzip``, ``deflate``, ``br`` or ``zstd``; ``gzip-members`` is gzip made of many small
      concatenated members (64 KiB each), see :func:`bomb_body`.
    * ``/bad-links``: a page whose links are every kind of bad link in :data:`BAD_LINKS`,
      plus the valid ones in ``BAD_LINKS_VALID`` (IDN hosts included).
    * ``/trap/...``: a spider trap: any path, linking relatively to ``loop/`` below itself.
    * ``/robots.txt``: 404 unless canned.

    Canned responses: ``site.canned[path] = Canned(status, body, headers, delay)`` answers
    ``path`` (without query) with that response, before any route (``/robots.txt`` too). A
    list of Canned is served one per request, the last one repeating.
    """

    __test__ = False  # not a pytest test class, despite the name

    def __init__(
        self,
        *,
        books: int = 1000,
        quotes: int = 100,
        shop_products: int = 20_000,
        host: str = "127.0.0.1",
        hosts: Sequence[str] | None = None,
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self._hosts = [_check_loopback(h) for h in (hosts or [host])]
        self._ssl = ssl_context
        #: Canned responses by path; see the class docstring.
        self.canned: dict[str, Canned | list[Canned]] = {}
        self._bomb_cache: dict[tuple[str, int], bytes] = {}
        if not self._hosts:
            raise ValueError("TestSite needs at least one host to bind")
        self._requested_port = port
        self._port: int | None = None
        self._bookstore = _Bookstore(books)
        self._quotes = _QuotesSite(quotes)
        self._shop = _Shop(shop_products)
        self.stats = SiteStats()
        self._flaky: dict[str, int] = {}
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Bind and serve. With several hosts and port 0, all share the first one's port."""
        self._loop = asyncio.get_running_loop()
        # handler_cancellation: a client that goes away must end its request here too, or the
        # in-flight counters would keep counting hung requests forever.
        runner = web.AppRunner(
            self._make_app(), access_log=None, handler_cancellation=True, shutdown_timeout=0.1
        )
        await runner.setup()
        self._runner = runner
        try:
            for attempt in range(10):
                port = self._requested_port
                try:
                    for i, address in enumerate(self._hosts):
                        site = web.TCPSite(runner, address, port, ssl_context=self._ssl)
                        await site.start()
                        if i == 0 and port == 0:
                            port = runner.addresses[0][1]
                    self._port = port
                    break
                except OSError:
                    # Port 0 was free on the first address but taken on another: start over.
                    for s in list(runner.sites):
                        await s.stop()
                    if self._requested_port or len(self._hosts) == 1 or attempt == 9:
                        raise
        except BaseException:
            await runner.cleanup()
            self._runner = None
            raise
        logger.debug("test site serving on %s", self.url)

    async def close(self) -> None:
        """Stop serving; requests still hanging or delayed are cut off."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("TestSite is not started")
        return self._port

    @property
    def host(self) -> str:
        """The first bound address."""
        return self._hosts[0]

    @property
    def url(self) -> str:
        """``http://<first host>:<port>`` without a trailing slash."""
        return self.url_for("", None)

    def url_for(self, path: str = "/", host: str | None = None) -> str:
        """Absolute URL of ``path`` on this site, reached as ``host`` (default the first)."""
        name = host or self._hosts[0]
        if ":" in name and not name.startswith("["):
            name = f"[{name}]"
        scheme = "https" if self._ssl is not None else "http"
        return f"{scheme}://{name}:{self.port}{path}"

    def reset_stats(self) -> None:
        """Clear hits, log and flaky counters; maxima restart from the current in-flight.

        Safe to call from another thread than the site's (see :func:`run_in_thread`).
        """
        loop = self._loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is not None and loop is not running and loop.is_running():
            done: concurrent.futures.Future[None] = concurrent.futures.Future()

            def reset() -> None:
                self._reset()
                done.set_result(None)

            loop.call_soon_threadsafe(reset)
            done.result(timeout=10)
        else:
            self._reset()

    def _reset(self) -> None:
        self.stats.reset()
        self._flaky.clear()

    # -- application -----------------------------------------------------------------------

    def _make_app(self) -> web.Application:
        stats = self.stats

        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            host = _host_name(request.headers.get("Host", ""))
            path = request.path
            stats.hits[path] += 1
            stats.log.append(Hit(time.monotonic(), path, host))
            stats.inflight += 1
            stats.max_inflight = max(stats.max_inflight, stats.inflight)
            n = stats.inflight_by_host.get(host, 0) + 1
            stats.inflight_by_host[host] = n
            if n > stats.max_inflight_by_host.get(host, 0):
                stats.max_inflight_by_host[host] = n
            try:
                canned = self._canned(path)
                if canned is not None:
                    return await canned.respond()
                return await handler(request)
            finally:
                stats.inflight -= 1
                stats.inflight_by_host[host] -= 1

        app = web.Application(middlewares=[record])
        r = app.router
        # bookstore
        r.add_get("/", self._home)
        r.add_get("/index.html", self._home)
        r.add_get(r"/catalogue/page-{page:\d+}.html", self._catalogue)
        r.add_get("/catalogue/category/books_1/index.html", self._category)
        r.add_get(r"/catalogue/category/books_1/page-{page:\d+}.html", self._category)
        r.add_get("/catalogue/category/books/{cat}/index.html", self._category)
        r.add_get(r"/catalogue/category/books/{cat}/page-{page:\d+}.html", self._category)
        r.add_get("/catalogue/{slug}/index.html", self._detail)
        # quotes
        r.add_get("/quotes", self._quotes_redirect)
        quotes_routes(app, self._quotes)
        # shop
        r.add_get("/shop", self._shop_redirect)
        r.add_get("/shop/", self._shop_index)
        r.add_get(r"/shop/list/{n:\d+}.html", self._shop_listing)
        r.add_get(r"/shop/p/{id:\d+}.html", self._shop_product)
        # faults
        r.add_route("*", r"/status/{code:\d+}", self._status)
        r.add_route("*", r"/redirect/{n:\d+}", self._redirect)
        r.add_route("*", "/redirect-to", self._redirect_to)
        r.add_route("*", "/redirect-loop/{key}", self._redirect_loop)
        r.add_route("*", "/redirect-loop/{key}/b", self._redirect_loop)
        r.add_route("*", "/delay/{seconds}", self._delay)
        r.add_route("*", "/hang", self._hang)
        r.add_route("*", "/headers-then-hang", self._headers_then_hang)
        r.add_route("*", "/trickle", self._trickle)
        r.add_route("*", "/drop", self._drop)
        r.add_route("*", "/truncated", self._truncated)
        r.add_route("*", "/flaky/{key}", self._flaky_handler)
        r.add_route("*", "/echo", self._echo)
        r.add_route("*", "/set-cookie", self._set_cookie)
        r.add_get("/json", self._json)
        r.add_get("/links", self._links)
        r.add_get("/page/{name}", self._page)
        r.add_get(r"/bytes/{n:\d+}", self._bytes)
        r.add_get(r"/gzip-bomb/{n:\d+}", self._gzip_bomb)
        r.add_get(r"/bomb/{coding}/{n:\d+}", self._bomb)
        r.add_get("/bad-links", self._bad_links)
        r.add_get("/trap/{tail:.*}", self._trap)
        return app

    def _canned(self, path: str) -> Canned | None:
        entry = self.canned.get(path)
        if entry is None or isinstance(entry, Canned):
            return entry
        if not entry:
            return None
        return entry.pop(0) if len(entry) > 1 else entry[0]

    # -- bookstore -------------------------------------------------------------------------

    async def _home(self, request: web.Request) -> web.Response:
        return _html(self._bookstore.catalogue(1, home=True))

    async def _catalogue(self, request: web.Request) -> web.Response:
        return _html(self._bookstore.catalogue(_int_param(request, "page"), home=False))

    async def _category(self, request: web.Request) -> web.Response:
        page = _int_param(request, "page", 1)
        return _html(self._bookstore.category(request.match_info.get("cat"), page))

    async def _detail(self, request: web.Request) -> web.Response:
        return _html(self._bookstore.detail(request.match_info["slug"]))

    # -- quotes ----------------------------------------------------------------------------

    async def _quotes_redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/quotes/")

    # -- shop ------------------------------------------------------------------------------

    async def _shop_redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPMovedPermanently("/shop/")

    async def _shop_index(self, request: web.Request) -> web.Response:
        return _html(self._shop.index())

    async def _shop_listing(self, request: web.Request) -> web.Response:
        return _html(self._shop.listing(_int_param(request, "n")))

    async def _shop_product(self, request: web.Request) -> web.Response:
        return _html(self._shop.product(_int_param(request, "id")))

    # -- faults ----------------------------------------------------------------------------

    async def _status(self, request: web.Request) -> web.Response:
        code = _int_param(request, "code")
        if not 200 <= code <= 599:
            raise web.HTTPBadRequest(text="status must be within 200..599")
        headers = dict(_TEXT)
        if "location" in request.query:
            headers["Location"] = request.query["location"]
        body = None if code in (204, 304) else f"status {code}\n".encode()
        return web.Response(status=code, body=body, headers=headers)

    @staticmethod
    def _redirect_status(request: web.Request) -> int:
        status = _int_param(request, "status", 302)
        if status not in (301, 302, 303, 307, 308):
            raise web.HTTPBadRequest(text="status must be one of 301 302 303 307 308")
        return status

    def _redirect_response(self, status: int, location: str) -> web.Response:
        body = f"redirecting to {location}\n".encode()
        return web.Response(status=status, body=body, headers={**_TEXT, "Location": location})

    async def _redirect(self, request: web.Request) -> web.Response:
        n = _int_param(request, "n")
        status = self._redirect_status(request)
        if n <= 0:
            return web.Response(body=b"redirect chain done\n", headers=_TEXT)
        query = f"?status={status}" if "status" in request.query else ""
        return self._redirect_response(status, f"/redirect/{n - 1}{query}")

    async def _redirect_to(self, request: web.Request) -> web.Response:
        url = request.query.get("url")
        if url is None:
            raise web.HTTPBadRequest(text="missing parameter url")
        return self._redirect_response(self._redirect_status(request), url)

    async def _redirect_loop(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        target = (
            f"/redirect-loop/{key}" if request.path.endswith("/b") else f"/redirect-loop/{key}/b"
        )
        return self._redirect_response(302, target)

    async def _delay(self, request: web.Request) -> web.Response:
        seconds = _float_param(request, "seconds", 0.0)
        await asyncio.sleep(seconds)
        return web.Response(body=f"delayed {seconds:g}s\n".encode(), headers=_TEXT)

    async def _never_answer(self, request: web.Request) -> NoReturn:
        """Wait until the client leaves (aiohttp then cancels the handler, since the runner
        has handler_cancellation) or the site closes, which cuts the connection."""
        await self._closing.wait()
        if request.transport is not None:
            request.transport.close()
        await asyncio.Future()  # cancelled once aiohttp sees the connection is gone
        raise AssertionError("unreachable")

    async def _hang(self, request: web.Request) -> web.Response:
        await self._never_answer(request)

    async def _headers_then_hang(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=_TEXT)
        response.content_length = 100
        await response.prepare(request)  # a StreamResponse sends its headers right here
        await self._never_answer(request)

    async def _trickle(self, request: web.Request) -> web.StreamResponse:
        size = _int_param(request, "bytes", 10)
        interval = _float_param(request, "interval", 1.0)
        response = web.StreamResponse(headers=_TEXT)
        response.content_length = size
        await response.prepare(request)
        for _ in range(size):
            await asyncio.sleep(interval)
            await response.write(b"x")
        await response.write_eof()
        return response

    async def _drop(self, request: web.Request) -> web.Response:
        if request.transport is not None:
            request.transport.close()
        await self._never_answer(request)

    async def _truncated(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers=_TEXT)
        response.content_length = 100
        await response.prepare(request)
        await response.write(b"0123456789")
        if request.transport is not None:
            request.transport.close()  # close() still sends what is buffered; abort() would not
        await self._never_answer(request)

    async def _flaky_handler(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        fail = _int_param(request, "fail", 1)
        status = _int_param(request, "status", 503)
        attempt = self._flaky.get(key, 0) + 1
        self._flaky[key] = attempt
        body = json.dumps({"key": key, "attempt": attempt}).encode()
        headers = {"Content-Type": "application/json"}
        if attempt <= fail:
            retry_after = request.query.get("retry_after")
            if retry_after is not None:
                headers["Retry-After"] = retry_after
            return web.Response(status=status, body=body, headers=headers)
        return web.Response(body=body, headers=headers)

    async def _echo(self, request: web.Request) -> web.Response:
        headers: dict[str, str] = {}
        for name, value in request.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        raw = await request.read()
        document = {
            "method": request.method,
            "path": request.path,
            "url": str(request.url),
            "query": dict(request.query),
            "headers": headers,
            "cookies": dict(request.cookies),
            "body": raw.decode("utf-8", "replace"),
        }
        return web.json_response(document)

    async def _set_cookie(self, request: web.Request) -> web.Response:
        response = web.json_response(dict(request.query))
        for name, value in request.query.items():
            response.set_cookie(name, value, path="/")
        return response

    async def _json(self, request: web.Request) -> web.Response:
        document = {
            "name": "testsite",
            "unicode": "Café 東京 Ελλάδα",
            "items": [{"id": i, "square": i * i} for i in range(1, 6)],
        }
        return web.json_response(document, dumps=lambda o: json.dumps(o, ensure_ascii=False))

    async def _links(self, request: web.Request) -> web.Response:
        n = _int_param(request, "n", 10)
        links = "".join(f'<li><a href="/page/{i}">page {i}</a></li>\n' for i in range(n))
        return _html(
            f"<!DOCTYPE html>\n<html><head><title>{n} links</title></head>\n"
            f"<body>\n<ul>\n{links}</ul>\n</body></html>\n"
        )

    async def _page(self, request: web.Request) -> web.Response:
        name = _esc(request.match_info["name"])
        return _html(
            f"<!DOCTYPE html>\n<html><head><title>Page {name}</title></head>\n"
            f'<body><h1 class="page">Page {name}</h1></body></html>\n'
        )

    async def _bytes(self, request: web.Request) -> web.StreamResponse:
        n = _int_param(request, "n")
        chunked = request.query.get("chunked") == "1"
        response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
        if chunked:
            response.enable_chunked_encoding()
        else:
            response.content_length = n
        await response.prepare(request)
        block = b"x" * 65536
        remaining = n
        while remaining > 0:
            await response.write(block[: min(remaining, len(block))])
            remaining -= len(block)
        await response.write_eof()
        return response

    async def _gzip_bomb(self, request: web.Request) -> web.Response:
        return await self._bomb_response("gzip", _int_param(request, "n"))

    async def _bomb(self, request: web.Request) -> web.Response:
        coding = request.match_info["coding"]
        n = _int_param(request, "n")
        if coding not in _BOMB_CODINGS:
            raise web.HTTPBadRequest(text=f"coding must be one of {sorted(_BOMB_CODINGS)}")
        return await self._bomb_response(coding, n)

    async def _bomb_response(self, coding: str, n: int) -> web.Response:
        body = self._bomb_cache.get((coding, n))
        if body is None:
            body = await asyncio.to_thread(bomb_body, coding, n)
            self._bomb_cache[(coding, n)] = body
        header = "gzip" if coding == "gzip-members" else coding
        return web.Response(
            body=body,
            headers={"Content-Type": "application/octet-stream", "Content-Encoding": header},
        )

    async def _trap(self, request: web.Request) -> web.Response:
        return _html(
            "<!DOCTYPE html>\n<html><head><title>trap</title></head>\n"
            f'<body><h1>{_esc(request.path)}</h1><a href="loop/">deeper</a></body></html>\n'
        )

    async def _bad_links(self, request: web.Request) -> web.Response:
        links = [*BAD_LINKS, *BAD_LINKS_VALID]
        items = "".join(f'<li><a href="{_esc(href, quote=True)}">link</a></li>\n'
                        for href in links)
        return _html(
            "<!DOCTYPE html>\n<html><head><title>bad links</title></head>\n"
            f"<body>\n<ul>\n{items}</ul>\n</body></html>\n"
        )


@dataclass(slots=True)
class Canned:
    """A fixed response for :attr:`TestSite.canned`: ``body`` (str is sent as UTF-8),
    ``headers`` as given (no Content-Type added; a list of pairs may repeat a name, as
    Set-Cookie does), after ``delay`` seconds."""

    status: int = 200
    body: bytes | str = b""
    headers: dict[str, str] | list[tuple[str, str]] = field(default_factory=dict)
    delay: float = 0.0

    async def respond(self) -> web.Response:
        if self.delay:
            await asyncio.sleep(self.delay)
        body = self.body.encode("utf-8") if isinstance(self.body, str) else self.body
        return web.Response(status=self.status, body=body, headers=CIMultiDict(self.headers))


#: Links that cannot be crawled, one per kind: ``/bad-links`` serves them all.
BAD_LINKS: tuple[str, ...] = (
    "javascript:alert(1)",
    "mailto:someone@example.com",
    "data:text/html,<b>x</b>",
    "file:///etc/passwd",
    "ftp://example.com/file",
    "tel:+441234567890",
    "",
    "   ",
    "http://exa mple.com/space-in-host",
    "http://a..b.com/",  # an empty label
    "http://\u2028bad.com/",  # a line separator cannot be IDNA-encoded
    "http://" + "a" * 64 + ".com/",  # a label over 63 characters
    "http://example.com:99999/",  # port out of range
    "http://example.com:0/",
    "http://ex\x01ample.com/",  # a control character (HTML parsers drop a NUL)
    "http://ex%00ample.com/",  # an escaped NUL in a host
    "http://999.1.1.1/",  # a numeric host that is not an IPv4 address
    "http://[::1/",  # an unclosed IPv6 literal
)  # fmt: skip

#: Links on ``/bad-links`` that are valid and lead to pages of the site (relative, or on
#: hosts that are not resolvable but valid once IDNA-encoded).
BAD_LINKS_VALID: tuple[str, ...] = (
    "/page/%zz-bad-escape",  # a bad escape is kept literally (as %25zz)
    "/page/with space",
    "/page/caf\u00e9",
    "/page/\ufffd\ufffd",  # what undecodable bytes become
    "  /page/padded  ",
)  # fmt: skip

_BOMB_CODINGS = frozenset({"gzip", "deflate", "br", "zstd", "gzip-members"})


def bomb_body(coding: str, n: int) -> bytes:
    """``n`` zero bytes compressed with ``coding`` (``gzip``, ``deflate`` (zlib-wrapped),
    ``br``, ``zstd``, or ``gzip-members``: one gzip member per 64 KiB, concatenated), built
    chunk by chunk so ``n`` may be far larger than memory."""
    step = 1 << 20
    zeros = bytes(min(n, step))
    if coding == "gzip-members":
        member = zlib.compress(bytes(1 << 16), 9, wbits=31)
        count, rest = divmod(n, 1 << 16)
        tail = zlib.compress(bytes(rest), 9, wbits=31) if rest else b""
        return member * count + tail
    if coding in ("gzip", "deflate"):
        # Raw deflate blocks of 1 MiB of zeros, each ended by a full flush: byte-aligned and
        # independent, so one compressed block repeats (a 1 GiB bomb costs milliseconds).
        count, rest = divmod(n, step)
        z = zlib.compressobj(9, zlib.DEFLATED, -15)
        block = z.compress(zeros) + z.flush(zlib.Z_FULL_FLUSH) if count else b""
        tail = z.compress(bytes(rest)) + z.flush(zlib.Z_FINISH)
        raw = block * count + tail
        if coding == "gzip":
            crc = 0
            for _ in range(count):
                crc = zlib.crc32(zeros, crc)
            crc = zlib.crc32(bytes(rest), crc)
            header = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
            return header + raw + struct.pack("<II", crc, n & 0xFFFFFFFF)
        adler = 1
        for _ in range(count):
            adler = zlib.adler32(zeros, adler)
        adler = zlib.adler32(bytes(rest), adler)
        return b"\x78\xda" + raw + struct.pack(">I", adler)
    if coding == "br":
        import brotli

        c = brotli.Compressor(quality=5)
        feed, finish = c.process, c.finish
    elif coding == "zstd":
        import zstandard

        zc = zstandard.ZstdCompressor(level=3).compressobj()
        feed, finish = zc.compress, zc.flush
    else:
        raise ValueError(f"unknown coding {coding!r}")
    parts = [feed(zeros[: min(n - done, step)]) for done in range(0, n, step)]
    parts.append(finish())
    return b"".join(parts)


# --------------------------------------------------------------------------------------------
# A raw server that breaks HTTP
# --------------------------------------------------------------------------------------------


def hostile_page(i: int) -> bytes:
    """The body :class:`HostileServer` serves for ``/page/{i}``: 2 to 10 KB of HTML whose
    end marker proves it complete (a truncated copy is never equal to it)."""
    filler = hashlib.blake2b(str(i).encode(), digest_size=32).hexdigest()
    repeat = 30 + (i * 7919) % 130
    return (
        f"<!DOCTYPE html>\n<html><head><title>page {i}</title></head><body>\n"
        f'<h1 id="n">{i}</h1>\n<p>{filler * repeat}</p>\n<p id="end">end of page {i}</p>\n'
        "</body></html>\n"
    ).encode()


class HostileServer:
    """A raw asyncio HTTP/1.1 server on 127.0.0.1 that misbehaves in ways aiohttp's server
    cannot: it writes bytes on the socket itself. Use as ``async with HostileServer() as h``.

    Paths (any method; the query string is ignored unless noted):

    * ``/ok``: a small valid 200 response.
    * ``/page/{i}``: :func:`hostile_page` ``(i)``, keep-alive. With ``reset_rate`` > 0 each
      request is, at random (``seed``), reset before the headers or in the middle of the
      body with that probability (half each).
    * ``/long-header?size=N``: a header line of N bytes (default 100,000).
    * ``/many-headers?n=N``: N header fields (default 5,000).
    * ``/no-colon``: a header line without a colon.
    * ``/bad-status/{kind}``: an invalid status line: ``word`` (``HTTP/1.1 OK``), ``code``
      (``HTTP/1.1 2000 OK``), ``garbage`` (not HTTP at all), ``empty`` (a blank line).
    * ``/reset-before-headers``: a TCP reset (RST) once the request is read.
    * ``/reset-mid-body``: headers announcing 10,000 bytes, 5,000 of them, then a reset.
    * ``/short-body``: ``Content-Length: 100``, 10 bytes, then a clean close (FIN).
    * ``/chunked-cut``: a chunked body closed (FIN) before its last chunk.
    * ``/no-length?bytes=N``: 200 with neither Content-Length nor chunking, N bytes, close.
    * ``/silent``: reads the request and never answers.

    ``hits`` counts requests by path; ``resets`` counts the resets of ``/page/``.
    """

    __test__ = False

    def __init__(self, *, reset_rate: float = 0.0, seed: int = 0) -> None:
        self.reset_rate = reset_rate
        self.hits: collections.Counter[str] = collections.Counter()
        self.resets = 0
        self._rng = random.Random(seed)
        self._server: asyncio.Server | None = None
        self._port: int | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closing = asyncio.Event()

    async def __aenter__(self) -> Self:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.close()
            self._closing.set()
            for writer in list(self._writers):
                writer.transport.abort()
            # Connection handlers are tasks of asyncio's server that close() leaves running;
            # with their sockets aborted and the closing event set, they all return.
            tasks = list(self._tasks)
            if tasks:
                await asyncio.wait(tasks, timeout=5)
            await self._server.wait_closed()
            self._server = None

    @property
    def url(self) -> str:
        if self._port is None:
            raise RuntimeError("HostileServer is not started")
        return f"http://127.0.0.1:{self._port}"

    def url_for(self, path: str) -> str:
        return self.url + path

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        self._writers.add(writer)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
                    return
                lines = head.decode("latin-1").split("\r\n")
                target = lines[0].split(" ")[1] if lines[0].count(" ") >= 2 else "/"
                length = 0
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip() or 0)
                if length:
                    await reader.readexactly(length)
                path, _, query = target.partition("?")
                params = dict(p.partition("=")[::2] for p in query.split("&") if p)
                self.hits[path] += 1
                if not await self._answer(path, params, writer):
                    return
        except (ConnectionError, OSError):
            return
        finally:
            self._writers.discard(writer)
            if task is not None:
                self._tasks.discard(task)
            if not writer.transport.is_closing():
                writer.close()

    async def _answer(self, path: str, params: dict[str, str], w: asyncio.StreamWriter) -> bool:
        """Answer one request; False when the connection is finished with."""
        if path == "/ok":
            return await self._send(w, 200, [], b"ok\n")
        if path.startswith("/page/"):
            i = int(path.rsplit("/", 1)[1])
            body = hostile_page(i)
            if self.reset_rate and self._rng.random() < self.reset_rate:
                self.resets += 1
                if self._rng.random() < 0.5:
                    _reset(w)
                    return False
                head = _head(200, [("Content-Type", "text/html; charset=utf-8"),
                                   ("Content-Length", str(len(body)))])
                w.write(head + body[: len(body) // 2])
                await w.drain()
                await asyncio.sleep(0.005)  # let the client read the first half
                _reset(w)
                return False
            return await self._send(w, 200, [("Content-Type", "text/html; charset=utf-8")], body)
        if path == "/long-header":
            size = int(params.get("size", 100_000))
            return await self._send(w, 200, [("X-Long", "x" * size)], b"ok\n")
        if path == "/many-headers":
            n = int(params.get("n", 5000))
            return await self._send(w, 200, [(f"X-H{k}", "v") for k in range(n)], b"ok\n")
        if path == "/no-colon":
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nThis line has no colon\r\n\r\nok\n")
            await w.drain()
            return True
        if path.startswith("/bad-status/"):
            kind = path.rsplit("/", 1)[1]
            line = {
                "word": b"HTTP/1.1 OK",
                "code": b"HTTP/1.1 2000 OK",
                "garbage": b"\x00\x01\x02 this is not HTTP",
                "empty": b"",
            }.get(kind, b"HTTP/1.1 OK")
            w.write(line + b"\r\nContent-Length: 3\r\n\r\nok\n")
            await w.drain()
            return False
        if path == "/reset-before-headers":
            _reset(w)
            return False
        if path == "/reset-mid-body":
            w.write(_head(200, [("Content-Length", "10000")]) + b"x" * 5000)
            await w.drain()
            await asyncio.sleep(0.01)
            _reset(w)
            return False
        if path == "/short-body":
            w.write(_head(200, [("Content-Length", "100")]) + b"0123456789")
            await w.drain()
            w.close()
            return False
        if path == "/chunked-cut":
            w.write(_head(200, [("Transfer-Encoding", "chunked")]) + b"5\r\nhello\r\n")
            await w.drain()
            w.close()
            return False
        if path == "/no-length":
            n = int(params.get("bytes", 1000))
            w.write(_head(200, [("Content-Type", "application/octet-stream"),
                                ("Connection", "close")]))
            block = b"x" * 65536
            while n > 0:
                w.write(block[: min(n, len(block))])
                n -= len(block)
                await w.drain()
            w.close()
            return False
        if path == "/silent":
            await self._closing.wait()  # until the server closes
            return False
        return await self._send(w, 404, [], b"not found\n")

    @staticmethod
    async def _send(
        w: asyncio.StreamWriter, status: int, headers: list[tuple[str, str]], body: bytes
    ) -> bool:
        w.write(_head(status, [*headers, ("Content-Length", str(len(body)))]) + body)
        await w.drain()
        return True


def _head(status: int, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} X"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _reset(w: asyncio.StreamWriter) -> None:
    """Close with a TCP reset (SO_LINGER 0) instead of a clean FIN."""
    sock = w.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    w.transport.abort()


# --------------------------------------------------------------------------------------------
# Running it from sync code and from the command line
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def run_in_thread(**kwargs: Any) -> Iterator[TestSite]:
    """Serve a :class:`TestSite` from a daemon thread with its own event loop.

    For callers without a running loop (subprocess tests, ``crawler demo``). Keyword
    arguments go to :class:`TestSite`. The site is started when the block is entered and
    closed (and the thread joined) when it is left.
    """
    started = threading.Event()
    failure: list[BaseException] = []
    holder: list[TestSite] = []
    stop: list[asyncio.Event] = []
    loop_box: list[asyncio.AbstractEventLoop] = []

    async def serve() -> None:
        try:
            site = TestSite(**kwargs)
            await site.start()
        except Exception as exc:
            failure.append(exc)
            started.set()
            return
        event = asyncio.Event()
        holder.append(site)
        stop.append(event)
        loop_box.append(asyncio.get_running_loop())
        started.set()
        try:
            await event.wait()
        finally:
            await site.close()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), name="testsite", daemon=True)
    thread.start()
    started.wait()
    if failure:
        thread.join()
        raise failure[0]
    try:
        yield holder[0]
    finally:
        loop_box[0].call_soon_threadsafe(stop[0].set)
        thread.join(timeout=30)


async def _serve_forever(site: TestSite) -> None:
    async with site:
        # The first line is the bare base URL, for scripts that start the site and read it.
        print(site.url, flush=True)
        print(
            f"bookstore {site.url}/  quotes {site.url}/quotes/  shop {site.url}/shop/"
            "  (Ctrl-C to stop)",
            flush=True,
        )
        await asyncio.Event().wait()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m crawler.testsite``: serve the site until Ctrl-C (the first line printed is
    the base URL), or with ``--write-shop DIR`` write the static shop and exit."""
    parser = argparse.ArgumentParser(
        prog="python -m crawler.testsite", description="Serve the bundled local test site."
    )
    parser.add_argument("--host", default="127.0.0.1", help="loopback address to bind")
    parser.add_argument("--port", type=int, default=8000, help="port (0 picks a free one)")
    parser.add_argument("--books", type=int, default=1000, help="number of books")
    parser.add_argument("--quotes", type=int, default=100, help="number of quotes")
    parser.add_argument("--shop", type=int, default=20_000, help="number of shop products")
    parser.add_argument(
        "--write-shop", metavar="DIR", help="write the shop as static files into DIR and exit"
    )
    args = parser.parse_args(argv)
    if args.write_shop:
        count = write_static_shop(args.write_shop, args.shop)
        print(f"wrote {count} files under {args.write_shop}")
        return 0
    try:
        site = TestSite(
            books=args.books,
            quotes=args.quotes,
            shop_products=args.shop,
            host=args.host,
            port=args.port,
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(_serve_forever(site))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
