"""``ItemLoader``: Scrapy's item loader, on Scrapy's own ``itemloaders`` library.

``ItemLoader(item=None, selector=None, response=None, parent=None, **context)`` collects
values with ``add_css`` / ``add_xpath`` / ``add_value`` (and ``replace_*``, ``get_*``,
``nested_css`` / ``nested_xpath``), runs each field's input processor as values arrive and its
output processor in ``load_item()``. Processors come from the loader (``<field>_in`` /
``<field>_out``, ``default_input_processor`` / ``default_output_processor``) or from the
item's field metadata: ``Field(input_processor=..., output_processor=...)`` on a
:class:`~crawler.dictitem.DictItem`, or ``json_schema_extra={"input_processor": ...}`` on a
pydantic model's field. The processors are ``itemloaders.processors``' (``TakeFirst``,
``MapCompose``, ``Join``, ``Compose``, ``Identity``, ``SelectJmes``).

As in Scrapy, ``default_item_class`` is an empty Scrapy-style item; set it to your item
class. A pydantic model class as ``default_item_class`` works too: the values are collected
in a dict and ``load_item()`` returns the validated model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import itemloaders
from itemadapter import ItemAdapter

from .dictitem import DictItem, register_adapter
from .items import base_model

if TYPE_CHECKING:
    from parsel import Selector

    from .http import Response

__all__ = ["ItemLoader"]

register_adapter()


def _is_model_class(cls: Any) -> bool:
    model = base_model()  # None while pydantic is not loaded: no class can be a model then
    return model is not None and isinstance(cls, type) and issubclass(cls, model)


class ItemLoader(itemloaders.ItemLoader):
    """Scrapy's ItemLoader; see the module docstring."""

    default_item_class: type = DictItem

    def __init__(
        self,
        item: Any = None,
        selector: Selector | None = None,
        response: Response | None = None,
        parent: itemloaders.ItemLoader | None = None,
        **context: Any,
    ) -> None:
        if selector is None and response is not None:
            selector = getattr(response, "selector", None)
        context.update(response=response)
        model = getattr(parent, "_model", None)
        if item is None and parent is None and _is_model_class(self.default_item_class):
            model, item = self.default_item_class, {}
        elif item is not None and _is_model_class(item) and parent is None:
            model, item = item, {}
        self._model: type | None = model
        super().__init__(item=item, selector=selector, parent=parent, **context)

    def _get_item_field_attr(self, field_name: str, key: Any, default: Any = None) -> Any:
        if self._model is not None:
            try:
                meta = ItemAdapter.get_field_meta_from_class(self._model, field_name)
            except KeyError:
                return default
            extra = meta.get("json_schema_extra")
            if key not in meta and isinstance(extra, dict):
                return extra.get(key, default)
            return meta.get(key, default)
        return super()._get_item_field_attr(field_name, key, default)

    def load_item(self) -> Any:
        item = super().load_item()
        model = self._model
        if model is not None and isinstance(item, dict):
            return model.model_validate(item)  # type: ignore[attr-defined]
        return item
