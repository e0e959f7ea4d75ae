"""``Item``: the base class of typed items, a pydantic model (``from crawler import Item``).

Its own module so that pydantic loads only when a spider uses a model (see
:mod:`crawler.items`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

__all__ = ["Item"]


class Item(BaseModel):
    """Base class for typed items: a pydantic model.

    Set ``item_model = MyItem`` on a spider to validate every dict item it yields against it;
    yield ``MyItem(...)`` instances directly for validation at construction.
    """

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    # Mapping-style access, so a pipeline written for dict items (Scrapy's habit:
    # item["price"]) works on a typed item too. Setting a field validates nothing: the model
    # was validated when it was built.
    def __getitem__(self, key: str) -> Any:
        if key not in type(self).model_fields:
            raise KeyError(key)
        return getattr(self, key)

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in type(self).model_fields:
            raise KeyError(f"{type(self).__name__} does not support field: {key}")
        setattr(self, key, value)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key in type(self).model_fields

    def get(self, key: str, default: Any = None) -> Any:
        """The field's value, or ``default`` for a name that is not a field."""
        return getattr(self, key) if key in type(self).model_fields else default

    def keys(self) -> list[str]:
        return list(type(self).model_fields)
