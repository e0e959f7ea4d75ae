"""``FormRequest`` and ``JsonRequest``: Scrapy's request builders, returning plain Requests.

``FormRequest(url, callback, formdata={...})`` url-encodes ``formdata`` (a dict or pairs; a
list value gives the key once per value): in the body of a POST (the method when
``formdata`` is given and no method is), or as the query of a GET (replacing the URL's own).
:meth:`FormRequest.from_response` builds the submission of a form on a page, as a browser
would: the form's fields with their values (checked boxes only, a select's selected option
or its first), the first submit control's name and value unless ``dont_click`` (or the one
``clickdata`` names), then ``formdata`` overriding fields of the same name.

``JsonRequest(url, data=...)`` sends ``data`` as a JSON body (keys sorted, as Scrapy does) with
``Content-Type: application/json``, POST unless a method is given.

Both return :class:`~crawler.http.Request` instances (the engine routes every request the same
way); ``isinstance(x, FormRequest)`` is therefore never true.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode, urljoin, urlsplit, urlunsplit

from .http import Request

if TYPE_CHECKING:
    from .http import Response

__all__ = ["FormRequest", "JsonRequest"]

FormData = Mapping[str, Any] | Iterable[tuple[str, Any]] | None

_RE_NS = {"re": "http://exslt.org/regular-expressions"}
_HTML5_SPACE = " \t\n\r\x0c"


def _is_listlike(value: Any) -> bool:
    return hasattr(value, "__iter__") and not isinstance(value, (str, bytes, dict))


def _urlencode(pairs: Iterable[tuple[str, Any]], encoding: str) -> str:
    values = [
        (_bytes(k, encoding), _bytes(v, encoding))
        for k, vs in pairs
        for v in (vs if _is_listlike(vs) else [vs])
    ]
    return urlencode(values, doseq=True)


def _bytes(value: Any, encoding: str) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode(encoding)


class FormRequest:
    """Build a form submission Request; see the module docstring."""

    valid_form_methods: ClassVar[list[str]] = ["GET", "POST"]

    def __new__(  # type: ignore[misc]
        cls,
        url: str,
        callback: Any = None,
        *,
        formdata: FormData = None,
        method: str | None = None,
        encoding: str = "utf-8",
        **kwargs: Any,
    ) -> Request:
        if formdata and method is None:
            method = "POST"
        method = (method or "GET").upper()
        if formdata:
            items = formdata.items() if isinstance(formdata, Mapping) else formdata
            query = _urlencode(items, encoding)
            if method == "POST":
                headers = dict(kwargs.pop("headers", None) or {})
                if not any(k.lower() == "content-type" for k in headers):
                    headers["Content-Type"] = "application/x-www-form-urlencoded"
                kwargs["headers"] = headers
                kwargs["body"] = query
            else:
                url = urlunsplit(urlsplit(url)._replace(query=query))
        return Request(url, callback, method=method, **kwargs)

    @classmethod
    def from_response(
        cls,
        response: Response,
        formname: str | None = None,
        formid: str | None = None,
        formnumber: int = 0,
        formdata: FormData = None,
        clickdata: dict[str, str | int] | None = None,
        dont_click: bool = False,
        formxpath: str | None = None,
        formcss: str | None = None,
        **kwargs: Any,
    ) -> Request:
        """The Request that submits a form of ``response``. The form is the one named
        ``formname``, else with id ``formid``, else the one holding the first match of
        ``formxpath`` / ``formcss``, else form number ``formnumber`` (0-based). Raises
        ``ValueError`` when the page has no form (or none matches ``formxpath``),
        ``IndexError`` for a ``formnumber`` past the last form."""
        kwargs.setdefault("encoding", response.encoding)
        if formcss is not None:
            from cssselect import HTMLTranslator

            formxpath = HTMLTranslator().css_to_xpath(formcss)
        form = _get_form(response, formname, formid, formnumber, formxpath)
        pairs = _get_inputs(form, formdata, dont_click, clickdata)
        url = _form_url(form, response, kwargs.pop("url", None))
        method = kwargs.pop("method", None) or form.get("method") or "GET"
        method = method.upper()
        if method not in cls.valid_form_methods:
            method = "GET"
        return cls(url, formdata=pairs, method=method, **kwargs)


def _form_url(form: Any, response: Response, url: str | None) -> str:
    base = form.base_url or response.url
    if url is None:
        action = form.get("action")
        if action is None:
            return str(base)
        return urljoin(str(base), str(action).strip(_HTML5_SPACE))
    return urljoin(str(base), url)


def _get_form(
    response: Response, formname: str | None, formid: str | None, formnumber: int,
    formxpath: str | None,
) -> Any:
    root = response.selector.root
    forms = root.xpath("//form")
    if not forms:
        raise ValueError(f"No <form> element found in {response}")
    if formname is not None:
        found = root.xpath(f'//form[@name="{formname}"]')
        if found:
            return found[0]
    if formid is not None:
        found = root.xpath(f'//form[@id="{formid}"]')
        if found:
            return found[0]
    if formxpath is not None:
        nodes = root.xpath(formxpath)
        if nodes:
            el = nodes[0]
            while el is not None:
                if el.tag == "form":
                    return el
                el = el.getparent()
        raise ValueError(f"No <form> element found with {formxpath}")
    try:
        return forms[formnumber]
    except IndexError:
        raise IndexError(f"Form number {formnumber} not found in {response}") from None


def _get_inputs(
    form: Any, formdata: FormData, dont_click: bool, clickdata: dict[str, Any] | None
) -> list[tuple[str, Any]]:
    try:
        given_keys = dict(formdata or ()).keys()
    except (ValueError, TypeError):
        raise ValueError("formdata should be a dict or iterable of tuples") from None
    inputs = form.xpath(
        "descendant::textarea|descendant::select"
        "|descendant::input[not(@type) or @type["
        ' not(re:test(., "^(?:submit|image|reset)$", "i"))'
        ' and (../@checked or not(re:test(., "^(?:checkbox|radio)$", "i")))]]',
        namespaces=_RE_NS,
    )
    values: list[tuple[str | None, Any]] = [
        (k, "" if v is None else v)
        for k, v in (_value(e) for e in inputs)
        if k and k not in given_keys
    ]
    if not dont_click:
        clickable = _clickable(clickdata, form)
        if clickable and clickable[0] is not None and clickable[0] not in given_keys:
            values.append(clickable)
    items = formdata.items() if isinstance(formdata, Mapping) else (formdata or ())
    values.extend((k, v) for k, v in items if v is not None)
    return [(str(k), v) for k, v in values]


def _value(el: Any) -> tuple[str | None, Any]:
    # lxml.html's form elements (parsel parses HTML with lxml.html): .value is what a browser
    # sends (a checkbox's "on", a textarea's text, a select's selected options).
    name, value = el.name, el.value
    if el.tag == "select":
        if value is None and not el.multiple:
            # A browser sends a single select's first option when none is selected.
            options = el.value_options
            return (name, options[0]) if options else (None, None)
        return name, list(value) if el.multiple else value
    return name, value


def _clickable(clickdata: dict[str, Any] | None, form: Any) -> tuple[str | None, str] | None:
    clickables = list(form.xpath(
        'descendant::input[re:test(@type, "^(submit|image)$", "i")]'
        '|descendant::button[not(@type) or re:test(@type, "^submit$", "i")]',
        namespaces=_RE_NS,
    ))
    if not clickables:
        return None
    if clickdata is None:
        el = clickables[0]
        return el.get("name"), el.get("value") or ""
    nr = clickdata.get("nr")
    if nr is not None:
        inputs = list(form.xpath(".//input|.//select|.//textarea"))
        if 0 <= int(nr) < len(inputs):
            el = inputs[int(nr)]
            return el.get("name"), el.get("value") or ""
    xpath = ".//*" + "".join(f'[@{k}="{v}"]' for k, v in clickdata.items())
    found = form.xpath(xpath)
    if len(found) == 1:
        return found[0].get("name"), found[0].get("value") or ""
    if len(found) > 1:
        raise ValueError(
            f"Multiple elements found ({found!r}) matching the criteria in clickdata: "
            f"{clickdata!r}")
    raise ValueError(f"No clickable element matching clickdata: {clickdata!r}")


class JsonRequest:
    """Build a JSON Request; see the module docstring."""

    def __new__(  # type: ignore[misc]
        cls,
        url: str,
        callback: Any = None,
        *,
        data: Any = None,
        dumps_kwargs: dict[str, Any] | None = None,
        method: str | None = None,
        body: bytes | str | None = None,
        **kwargs: Any,
    ) -> Request:
        dumps = {"sort_keys": True, **(dumps_kwargs or {})}
        if body is None and data is not None:
            body = json.dumps(data, **dumps)
            method = method or "POST"
        headers = dict(kwargs.pop("headers", None) or {})
        lower = {k.lower() for k in headers}
        if "content-type" not in lower:
            headers["Content-Type"] = "application/json"
        if "accept" not in lower:
            headers["Accept"] = "application/json, text/javascript, */*; q=0.01"
        return Request(url, callback, method=method or "GET", body=body, headers=headers,
                       **kwargs)
