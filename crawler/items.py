"""Items: validation against a spider's ``item_model``, pipelines; the typed ``Item`` base.

pydantic is imported only when a model is used (``Item`` lives in :mod:`crawler.typeditem`,
re-exported here on first use): a crawl of dict items never loads it, ~120 ms of start-up.
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from .errors import DropItem

if TYPE_CHECKING:
    from pydantic import BaseModel

    from .spider import Spider
    from .typeditem import Item as Item

logger = logging.getLogger(__name__)

__all__ = [
    "DropItem", "Item", "ItemPipeline", "ItemProcessor", "InvalidItem", "LossyValues",
    "CloseHook", "CloseSpiderHook", "OpenHook", "OpenSpiderHook", "PipelineFailed", "ProcessItem",
    "to_dict", "validate_item",
]


class ProcessItem(Protocol):
    """A pipeline's ``process_item`` hook (sync or async)."""

    def process_item(self, item: Any, spider: Spider) -> Any:
        """The item (or a new one) to pass on; raise :class:`~crawler.errors.DropItem` to
        discard it (counted as ``items_dropped``)."""


class OpenHook(Protocol):
    """A pipeline's ``open(spider)`` hook (sync or async); Scrapy's name is ``open_spider``."""

    def open(self, spider: Spider) -> Any:
        """Called once before the first request."""


class CloseHook(Protocol):
    """A pipeline's ``close(spider)`` hook (sync or async); Scrapy's name is ``close_spider``."""

    def close(self, spider: Spider) -> Any:
        """Called once at the end, even after errors."""


class OpenSpiderHook(Protocol):
    """Scrapy's name for :class:`OpenHook`."""

    def open_spider(self, spider: Spider) -> Any:
        """Called once before the first request."""


class CloseSpiderHook(Protocol):
    """Scrapy's name for :class:`CloseHook`."""

    def close_spider(self, spider: Spider) -> Any:
        """Called once at the end, even after errors."""


#: An item pipeline: an object with at least one of the hooks above.
#:
#: Every method is optional and may be sync or async, as in Scrapy. :class:`ItemProcessor`
#: finds them by name once, when it is built: ``process_item``; ``open`` or else
#: ``open_spider``; ``close`` or else ``close_spider``; a missing one is skipped.
#:
#: What ``process_item`` receives is the item as the spider yielded it, or the spider's
#: ``item_model`` instance when it has one. ``itemadapter.ItemAdapter(item)`` reads and
#: writes the fields of any kind of item; ``crawler.Item`` models also answer
#: ``item["field"]``, so a pipeline written for dicts works on them.
ItemPipeline: TypeAlias = (
    ProcessItem | OpenHook | CloseHook | OpenSpiderHook | CloseSpiderHook
)


def __getattr__(name: str) -> Any:
    if name == "Item":  # the pydantic model base: pydantic loads with it
        from .typeditem import Item

        return Item
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def base_model() -> type[BaseModel] | None:
    """pydantic's ``BaseModel`` once pydantic's models are loaded, else None: no object can
    be a model before (its class loaded them), so a crawl of dicts never imports pydantic."""
    main = sys.modules.get("pydantic.main")
    if main is None:
        return None
    model: type[BaseModel] = main.BaseModel
    return model


def is_model(obj: object) -> bool:
    """Whether ``obj`` is a pydantic model instance."""
    model = base_model()
    return model is not None and isinstance(obj, model)


def to_dict(item: Any) -> dict[str, Any]:
    """An item as a plain dict for the exporters: models are dumped, dataclasses converted."""
    if type(item) is dict:
        return item
    if is_model(item):
        dumped: dict[str, Any] = item.model_dump()
        return dumped
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        return dataclasses.asdict(item)
    if isinstance(item, Mapping):
        declared = getattr(type(item), "fields", None)
        if isinstance(declared, dict):  # a Scrapy-style item: CSV columns are its fields
            from .dictitem import ItemDict

            return ItemDict(item, declared_fields=list(declared))
        return dict(item)
    from itemadapter import ItemAdapter  # attrs classes and the other kinds it knows

    if ItemAdapter.is_item(item):
        return ItemAdapter(item).asdict()
    raise TypeError(f"not an item: {type(item).__name__}")


def is_item(obj: object) -> bool:
    """Whether a callback output is an item (as opposed to a Request or junk)."""
    return (
        isinstance(obj, (dict, Mapping))
        or is_model(obj)
        or (dataclasses.is_dataclass(obj) and not isinstance(obj, type))
    )


@dataclasses.dataclass(slots=True)
class InvalidItem:
    """An item that failed validation: what was yielded and why it was refused."""

    item: Any
    errors: list[dict[str, Any]]


def validate_item(model: type[BaseModel], item: Any) -> Any:
    """``item`` (a dict, a model or a dataclass) validated against ``model``: a ``model``
    instance, or an :class:`InvalidItem` listing each error's ``loc``, ``msg`` and ``type``."""
    from pydantic import BaseModel, ValidationError  # loaded already: ``model`` is one

    if isinstance(item, model):
        return item
    try:
        if isinstance(item, BaseModel):
            return model.model_validate(item.model_dump())
        if dataclasses.is_dataclass(item) and not isinstance(item, type):
            return model.model_validate(dataclasses.asdict(item))
        return model.model_validate(item)
    except ValidationError as exc:
        errors = [
            {"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False)
        ]
        return InvalidItem(item, errors)


class ItemProcessor:
    """Validates items against the spider's model, then runs them through the pipelines.

    ``process`` returns the finished item, ``None`` when a pipeline dropped it, or an
    :class:`InvalidItem`. Pipeline exceptions other than DropItem are raised as
    :class:`PipelineFailed`; the engine logs and counts them and loses only that item.
    """

    def __init__(
        self, spider: Spider, model: type[BaseModel] | None, pipelines: Sequence[ItemPipeline]
    ) -> None:
        self.spider = spider
        self.model = model
        self._steps: list[tuple[Any, bool]] = []
        for pipeline in pipelines:
            method = getattr(pipeline, "process_item", None)
            if method is not None:
                self._steps.append((method, inspect.iscoroutinefunction(method)))
        self.pipelines = pipelines
        self._logged_kinds: set[str] = set()

    async def open(self) -> None:
        # open/close, or Scrapy's open_spider/close_spider.
        for pipeline in self.pipelines:
            method = getattr(pipeline, "open", None) or getattr(pipeline, "open_spider", None)
            await _maybe_await(method, self.spider)

    async def close(self) -> None:
        # Each pipeline closes even when an earlier one failed to.
        for pipeline in self.pipelines:
            try:
                method = getattr(pipeline, "close", None) or getattr(
                    pipeline, "close_spider", None)
                await _maybe_await(method, self.spider)
            except Exception:
                logger.exception("Pipeline %r failed to close", pipeline)

    def validate(self, item: Any) -> Any:
        """The item validated against the model (a model instance), or an InvalidItem."""
        model = self.model
        if model is None:
            return item
        result = validate_item(model, item)
        if type(result) is InvalidItem:
            errors = result.errors
            kind = ",".join(sorted({f"{'.'.join(map(str, e['loc']))}:{e['type']}" for e in errors}))
            if kind not in self._logged_kinds:  # once per kind, or a bad selector floods the log
                self._logged_kinds.add(kind)
                logger.warning("Invalid %s item (%s): %s", model.__name__, kind, errors[0]["msg"])
        return result

    async def run_pipelines(self, item: Any) -> Any:
        """The item after every pipeline, or None if one dropped it. Any other exception is
        raised as :class:`PipelineFailed` naming the pipeline: it costs that item only."""
        for method, is_async in self._steps:
            try:
                item = (await method(item, self.spider)) if is_async else method(item, self.spider)
            except DropItem as exc:
                logger.debug("Dropped item: %s", exc)
                return None
            except Exception as exc:
                raise PipelineFailed(_owner_name(method), exc) from exc
        return item


class PipelineFailed(Exception):
    """A pipeline's ``process_item`` raised (not DropItem): ``pipeline`` names it, ``error``
    is what it raised. The engine counts ``errors/<type of error>`` and drops that item."""

    def __init__(self, pipeline: str, error: Exception) -> None:
        super().__init__(f"pipeline {pipeline} failed: {type(error).__name__}: {error}")
        self.pipeline = pipeline
        self.error = error


def _owner_name(method: Any) -> str:
    owner = getattr(method, "__self__", None)
    return type(owner).__name__ if owner is not None else getattr(method, "__qualname__", "?")


class LossyValues:
    """Warns once per field when an item holds a value the output cannot keep as it is:
    ``bytes`` (written as text decoded as UTF-8, bad bytes as U+FFFD) and NaN or infinity
    (JSON has neither: written as null). The item is still written."""

    def __init__(self) -> None:
        self._warned: set[tuple[str, str]] = set()

    def check(self, item: dict[str, Any]) -> None:
        for key, value in item.items():
            kind = type(value)
            if kind is float:
                if value - value == 0.0:  # finite: the common case, one subtraction
                    continue
                what, how = ("NaN" if value != value else "infinity"), "null"
            elif kind is bytes or kind is bytearray:
                what, how = "bytes", "text decoded as UTF-8"
            else:
                continue
            if (str(key), what) in self._warned:
                continue
            self._warned.add((str(key), what))
            logger.warning("Item field %r holds %s: written as %s (warned once per field)",
                           key, what, how)


async def _maybe_await(method: Any, *args: Any) -> None:
    if method is None:
        return
    result = method(*args)
    if inspect.isawaitable(result):
        await result
