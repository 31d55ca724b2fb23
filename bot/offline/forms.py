"""Request bodies of the offline engine: ``multipart/form-data`` parts and JSON objects.

The engine reads a request body whole before parsing it (every body is recorded for tests), so
the multipart parser works on bytes already in memory: aiohttp's :class:`~aiohttp.MultipartReader`
reads them from :class:`_BufferedContent`, a read-only stream over those bytes. The same parser
reads recorded bodies in the tests (``tests.conftest.form_parts``).
"""

from __future__ import annotations

import email.message
import email.utils
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import BodyPartReader, MultipartReader, StreamReader, hdrs

__all__ = ["BadRequest", "Form", "FormPart", "read_body", "read_multipart"]


class BadRequest(Exception):
    """Invalid input; ``str()`` is the 400 answer's ``error`` text, naming the field first."""


@dataclass(frozen=True, slots=True)
class FormPart:
    """One part of a multipart body.

    Attributes:
        name: the ``name`` of its ``Content-Disposition`` (None if the part has none).
        filename: its ``filename`` (None for text fields).
        data: its raw bytes, transfer encoding not undone.
    """

    name: str | None
    filename: str | None
    data: bytes


class _BufferedContent:
    """The reading calls :class:`~aiohttp.MultipartReader` makes on a request's ``content``
    stream, answered from bytes already in memory (so every read returns at once)."""

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def at_eof(self) -> bool:
        return self._pos >= len(self._data)

    async def read(self, n: int = -1) -> bytes:
        end = len(self._data) if n < 0 else min(len(self._data), self._pos + n)
        chunk, self._pos = self._data[self._pos : end], end
        return chunk

    async def readany(self) -> bytes:
        return await self.read()

    async def readline(self, *, max_line_length: int | None = None) -> bytes:
        newline = self._data.find(b"\n", self._pos)
        end = len(self._data) if newline < 0 else newline + 1
        if max_line_length is not None and end - self._pos > max_line_length:
            raise ValueError(f"line longer than {max_line_length} bytes")
        return await self.read(end - self._pos)

    def unread_data(self, data: bytes) -> None:
        # The reader pushes back the boundary it read past; that is almost always the bytes
        # just read, so stepping back suffices and a 10 MB part is not copied again.
        start = self._pos - len(data)
        if start >= 0 and self._data[start : self._pos] == data:
            self._pos = start
        else:
            self._data, self._pos = data + self._data[self._pos :], 0


def _header_param(value: str, param: str, header: str = "content-type") -> str | None:
    """Return parameter ``param`` of a MIME header value (quoting and RFC 2231 handled)."""
    message = email.message.Message()
    message[header] = value
    found = message.get_param(param, header=header)
    if found is None:
        return None
    return email.utils.collapse_rfc2231_value(found)


async def read_multipart(body: bytes, content_type: str) -> list[FormPart]:
    """Split a ``multipart/form-data`` body (RFC 7578) into its parts, in body order.

    Args:
        body: the whole request body.
        content_type: the full ``Content-Type`` header, boundary included.

    Returns:
        The parts; nested ``multipart/*`` parts (not allowed in form data) are skipped.

    Raises:
        BadRequest: no boundary, or a body aiohttp cannot parse as multipart.
    """
    if not _header_param(content_type, "boundary"):
        raise BadRequest("Content-Type multipart/form-data has no boundary parameter")
    # MultipartReader is typed for aiohttp's StreamReader but only reads through it.
    content = cast("StreamReader", _BufferedContent(body))
    parts: list[FormPart] = []
    try:
        async for part in MultipartReader({hdrs.CONTENT_TYPE: content_type}, content):
            if isinstance(part, BodyPartReader):
                data = bytes(await part.read(decode=False))
                parts.append(FormPart(name=part.name, filename=part.filename, data=data))
    except (ValueError, AssertionError, RuntimeError) as exc:
        raise BadRequest("malformed multipart body") from exc
    return parts


class Form:
    """The fields of a request body by name: multipart parts, or the members of a JSON object.

    ``prefix`` names where the fields came from in error messages (``"image_request."`` for
    the JSON part of ``/upscale``).
    """

    def __init__(
        self,
        parts: Iterable[FormPart] = (),
        values: Mapping[str, Any] | None = None,
        prefix: str = "",
    ) -> None:
        self._parts: dict[str, list[FormPart]] = {}
        for part in parts:
            if part.name is not None:  # RFC 7578 requires a name; a nameless part is no field
                self._parts.setdefault(part.name, []).append(part)
        self._values = dict(values or {})
        self.prefix = prefix

    def label(self, name: str) -> str:
        """Return ``name`` as error messages show it (with :attr:`prefix`)."""
        return self.prefix + name

    def raw(self, name: str) -> Any:
        """Return the field's first value (``str`` for multipart, any JSON value), or None.

        Raises:
            BadRequest: a multipart field that is not UTF-8 text.
        """
        values = self.raw_all(name)
        return values[0] if values else None

    def raw_all(self, name: str) -> list[Any]:
        """Return every value of a repeated field (a JSON list counts as its items).

        Raises:
            BadRequest: a multipart field that is not UTF-8 text.
        """
        if name in self._parts:
            out: list[Any] = []
            for part in self._parts[name]:
                try:
                    out.append(part.data.decode("utf-8"))
                except UnicodeDecodeError as exc:
                    raise BadRequest(f"{self.label(name)}: is not valid UTF-8 text") from exc
            return out
        value = self._values.get(name)
        if value is None:
            return []
        return list(value) if isinstance(value, list) else [value]

    def values(self, names: Iterable[str], repeated: Iterable[str] = ()) -> dict[str, Any]:
        """Return the present fields among ``names``: first values, all values for ``repeated``.

        Raises:
            BadRequest: a multipart field that is not UTF-8 text.
        """
        many = set(repeated)
        out: dict[str, Any] = {}
        for name in names:
            found = self.raw_all(name)
            if found:
                out[name] = found if name in many else found[0]
        return out

    def file(self, name: str) -> bytes | None:
        """Return the bytes of the first part called ``name``, or None (JSON bodies have none)."""
        parts = self._parts.get(name)
        return parts[0].data if parts else None

    def files(self, name: str) -> list[bytes]:
        """Return the bytes of every part called ``name`` (repeated file parts), in body order."""
        return [part.data for part in self._parts.get(name, ())]


async def read_body(
    content_type: str, full_content_type: str, body: bytes, *, json_ok: bool
) -> Form:
    """Return the fields of a request body, per its ``Content-Type``.

    Args:
        content_type: the media type alone, e.g. ``"multipart/form-data"``.
        full_content_type: the whole header, parameters included.
        body: the whole request body.
        json_ok: whether ``application/json`` is accepted too.

    Raises:
        BadRequest: unsupported content type (the API's endpoints take multipart only,
            ``generate`` also JSON), or a body that does not parse.
    """
    if content_type == "multipart/form-data":
        return Form(parts=await read_multipart(body, full_content_type))
    if json_ok and content_type == "application/json":
        try:
            values = json.loads(body)
        except ValueError as exc:
            raise BadRequest("request body is not valid JSON") from exc
        if not isinstance(values, dict):
            raise BadRequest("request body must be a JSON object")
        return Form(values=values)
    wanted = "multipart/form-data or application/json" if json_ok else "multipart/form-data"
    got = content_type or "none"
    raise BadRequest(f"Content-Type must be {wanted} (got {got})")
