"""The shop of the demo site: a scalable site for large crawls.

An index of listings (``/shop/``), 20 products per listing (``/shop/list/<n>.html``), each
product (``/shop/p/<id>.html``) linking 5 other products; links are flat and root-relative.
:func:`write_static_shop` writes the very same bytes as files (for a static web server in the
benchmarks); :func:`expected_shop_items` gives the items.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .demobooks import ADJECTIVES, digest, price_decimal, price_text

__all__ = ["PRODUCTS_PER_LISTING", "Shop", "expected_shop_items", "write_static_shop"]

PRODUCTS_PER_LISTING = 20


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
    d = digest("product", product_id)
    adjective = ADJECTIVES[d[0] % len(ADJECTIVES)]
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
                "price": price_decimal(p.pence),
                "sku": p.sku,
                "url": f"/shop/p/{p.id}.html",
            }
        )
    return out


# --------------------------------------------------------------------------------------------
# Pages (flat, root-relative links, identical bytes when written as static files)
# --------------------------------------------------------------------------------------------


def _shop_frame(title: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{title} | Test Shop</title>\n</head>\n<body>\n{body}</body>\n</html>\n"
    )


class Shop:
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
            f'<p>Price: <span class="price">{price_text(p.pence, "$")}</span></p>\n'
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
    exactly the bytes :class:`crawler.demosite.DemoSite` serves at the same path, so a static
    server (nginx with ``root <directory>;`` and the default ``index index.html;``) serves the
    same site, with ``/shop/`` as its index.
    """
    base = Path(directory)
    for sub in ("shop/list", "shop/p"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    count = 0
    for rel, page in Shop(products).files():
        (base / rel).write_bytes(page.encode("utf-8"))
        count += 1
    return count

