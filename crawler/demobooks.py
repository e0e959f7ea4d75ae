"""The bookstore of the demo site: books.toscrape.com's HTML, generated from integers.

Listing pages (``/index.html``, ``/catalogue/page-N.html``), 50 category listings
(``/catalogue/category/books/<slug>_<n>/index.html`` and ``page-N.html``) and one detail page
per book (``/catalogue/<slug>_<id>/index.html``). Links are relative, exactly as on the real
site, so a crawler that joins URLs wrongly goes astray. :func:`expected_books` gives the item
every book page must produce. The helpers that make values from integers (:func:`digest`,
:func:`price_text`, :data:`ADJECTIVES`) are shared with the quotes and the shop.

The page templates follow the real site's markup line for line (whitespace trimmed), which is
most of this module's length.
"""

from __future__ import annotations

import hashlib
import html
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = ["ADJECTIVES", "BOOKS_PER_PAGE", "CATEGORIES", "Bookstore", "digest", "expected_books",
           "price_decimal", "price_text"]

BOOKS_PER_PAGE = 20

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

ADJECTIVES: tuple[str, ...] = (
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


def digest(kind: str, number: int) -> bytes:
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


def price_text(pence: int, currency: str) -> str:
    return f"{currency}{pence // 100}.{pence % 100:02d}"


def price_decimal(pence: int) -> Decimal:
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
    d = digest("book", book_id)
    combos = len(ADJECTIVES) * len(_NOUNS)
    # 7919 is prime, so id -> (adjective, noun) is a bijection within each run of `combos` ids;
    # a volume number keeps titles unique beyond that.
    index = ((book_id - 1) * 7919) % combos
    volume = (book_id - 1) // combos
    title = f"The {ADJECTIVES[index // len(_NOUNS)]} {_NOUNS[index % len(_NOUNS)]}"
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
                "price": price_decimal(b.pence),
                "availability": b.stock,
                "rating": b.rating,
                "upc": b.upc,
                "category": b.category.name,
                "url": b.path,
            }
        )
    return out


# --------------------------------------------------------------------------------------------
# Pages (markup follows books.toscrape.com, whitespace trimmed)
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
        <p class="price_color">{price_text(book.pence, "£")}</p>
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
    price = price_text(book.pence, "£")
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


class Bookstore:
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

