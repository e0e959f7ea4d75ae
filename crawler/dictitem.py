"""Scrapy-style items: a dict with a declared set of keys.

::

    class Product(DictItem):           # scrapy.Item in the compatibility layer
        name = Field()
        price = Field(serializer=str, output_processor=TakeFirst())

    item = Product(name="Lamp")
    item["price"] = 10                 # KeyError for a field that was not declared
    Product.fields["price"]            # the Field: its metadata, for loaders and exporters

A :class:`DictItem` is a ``MutableMapping`` (not a ``dict``): reading a field that was never
set raises ``KeyError``, attribute access to fields is refused (``item["name"]``, not
``item.name``), exports write it as a dict of the fields that were set. ``crawler.Item`` stays
the pydantic base for typed items; this class is for spiders written for Scrapy.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from pprint import pformat
from typing import Any, ClassVar

__all__ = ["DictItem", "Field", "ItemDict"]


class Field(dict[str, Any]):
    """A declared field: a dict of metadata (``serializer``, ``input_processor``,
    ``output_processor``, or anything a pipeline reads)."""


class ItemDict(dict[str, Any]):
    """A Scrapy-style item as exported: a plain dict of the fields that were set, which also
    knows every declared field (``declared_fields``: a CSV file's columns, as in Scrapy)."""

    __slots__ = ("declared_fields",)

    def __init__(self, values: Any = (), *, declared_fields: list[str] | None = None) -> None:
        super().__init__(values)
        self.declared_fields = declared_fields or list(self)


class DictItem(MutableMapping[str, Any]):
    """Base class of Scrapy-style items; see the module docstring."""

    fields: ClassVar[dict[str, Field]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        fields: dict[str, Field] = {}
        for base in reversed(cls.__mro__[1:]):
            fields.update(getattr(base, "fields", {}))
        for name, value in list(vars(cls).items()):
            if isinstance(value, Field):
                fields[name] = value
                delattr(cls, name)  # item.name must not read the Field: item["name"] is it
        cls.fields = fields

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._values: dict[str, Any] = {}
        if args or kwargs:
            for key, value in dict(*args, **kwargs).items():
                self[key] = value

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key not in self.fields:
            raise KeyError(f"{type(self).__name__} does not support field: {key}")
        self._values[key] = value

    def __delitem__(self, key: str) -> None:
        del self._values[key]

    def __getattr__(self, name: str) -> Any:
        if name in type(self).fields:
            raise AttributeError(f"Use item[{name!r}] to get field value")
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_"):
            raise AttributeError(f"Use item[{name!r}] = {value!r} to set field value")
        super().__setattr__(name, value)

    def __len__(self) -> int:
        return len(self._values)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def keys(self) -> Any:
        return self._values.keys()

    def __repr__(self) -> str:
        return pformat(dict(self))

    def copy(self) -> DictItem:
        return type(self)(self)

    def deepcopy(self) -> DictItem:
        import copy

        return copy.deepcopy(self)


def register_adapter() -> None:
    """Teach ``itemadapter`` about DictItem (field names and metadata from ``fields``), so
    ``ItemAdapter`` and ItemLoader treat it exactly as Scrapy's own Item. Idempotent."""
    from itemadapter import ItemAdapter
    from itemadapter.adapter import ScrapyItemAdapter

    if any(getattr(c, "_crawler_dictitem", False) for c in ItemAdapter.ADAPTER_CLASSES):
        return

    class DictItemAdapter(ScrapyItemAdapter):
        _crawler_dictitem = True

        @classmethod
        def is_item(cls, item: Any) -> bool:
            return isinstance(item, DictItem)

        @classmethod
        def is_item_class(cls, item_class: type) -> bool:
            return isinstance(item_class, type) and issubclass(item_class, DictItem)

    classes = ItemAdapter.ADAPTER_CLASSES
    if hasattr(classes, "appendleft"):
        classes.appendleft(DictItemAdapter)
    else:  # pragma: no cover - an itemadapter that keeps a tuple
        ItemAdapter.ADAPTER_CLASSES = (DictItemAdapter, *classes)
