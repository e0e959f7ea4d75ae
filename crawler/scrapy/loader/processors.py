"""``scrapy.loader.processors``: the old home of ``itemloaders.processors``."""

from itemloaders.processors import Compose, Identity, Join, MapCompose, SelectJmes, TakeFirst

__all__ = ["Compose", "Identity", "Join", "MapCompose", "SelectJmes", "TakeFirst"]
