"""Text layers of a ``/layerize`` result: the blocks in words, and an editable SVG.

``POST /v1/ideogram-v3/layerize-text`` (in the API spec) answers with a text-free base image and
the text blocks it found. :func:`layers_svg` puts them back together as one SVG: the base image
embedded as a ``data:`` URI, and one ``<text>`` element per block at its position, with its font
family, size and colour when the API gave them — so the text can be edited in any SVG editor.
"""

from __future__ import annotations

import base64
import json
import xml.etree.ElementTree as ET
from collections.abc import Sequence

from bot.ideogram.models_edit import LayerizeTextBlock

_SVG_NS = "http://www.w3.org/2000/svg"
_XLINK_NS = "http://www.w3.org/1999/xlink"


def dump_blocks(blocks: Sequence[LayerizeTextBlock]) -> list[str]:
    """The blocks as JSON strings, as a job stores them (one per block, unset fields left out,
    fields the spec does not list kept)."""
    return [json.dumps(b.model_dump(exclude_none=True), ensure_ascii=False) for b in blocks]


def load_blocks(stored: Sequence[str]) -> list[LayerizeTextBlock]:
    """Read blocks stored with :func:`dump_blocks` back (entries that are not JSON objects are
    skipped)."""
    blocks = []
    for raw in stored:
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        if isinstance(data, dict):
            blocks.append(LayerizeTextBlock.model_validate(data))
    return blocks


def _px(value: float) -> str:
    return f"{value:g}"


def describe_block(block: LayerizeTextBlock) -> str:
    """One block in words: ``"SALE" at 10,20 (Aileron, 32 px, #FF0000)``."""
    where = (
        f" at {_px(block.x)},{_px(block.y)}" if block.x is not None and block.y is not None else ""
    )
    style = [
        part
        for part in (
            block.font_family,
            f"{_px(block.font_size)} px" if block.font_size is not None else None,
            block.color,
        )
        if part
    ]
    return f"“{block.text}”{where}" + (f" ({', '.join(style)})" if style else "")


def layers_svg(
    base: bytes,
    content_type: str,
    width: int,
    height: int,
    blocks: Sequence[LayerizeTextBlock],
) -> bytes:
    """An SVG document of the base image with the text blocks as ``<text>`` elements.

    Args:
        base: the text-free base image as stored.
        content_type: its MIME type (``image/png`` …), for the data URI.
        width, height: its size in pixels (the SVG's size and view box).
        blocks: the text blocks; ``x``/``y`` is a block's top-left corner in pixels.

    Returns:
        UTF-8 SVG bytes with an XML declaration.
    """
    ET.register_namespace("", _SVG_NS)
    ET.register_namespace("xlink", _XLINK_NS)
    svg = ET.Element(
        f"{{{_SVG_NS}}}svg",
        {
            "width": str(width),
            "height": str(height),
            "viewBox": f"0 0 {width} {height}",
            "version": "1.1",
        },
    )
    uri = f"data:{content_type};base64,{base64.b64encode(base).decode('ascii')}"
    ET.SubElement(
        svg,
        f"{{{_SVG_NS}}}image",
        {
            "x": "0",
            "y": "0",
            "width": str(width),
            "height": str(height),
            "href": uri,
            f"{{{_XLINK_NS}}}href": uri,
        },
    )
    for block in blocks:
        attrs = {
            "x": _px(block.x or 0),
            "y": _px(block.y or 0),
            # x/y is the top-left corner of the block, not a baseline.
            "dominant-baseline": "text-before-edge",
        }
        if block.font_family:
            attrs["font-family"] = block.font_family
        if block.font_size is not None:
            attrs["font-size"] = _px(block.font_size)
        if block.font_weight is not None:
            attrs["font-weight"] = str(block.font_weight)
        if block.color:
            attrs["fill"] = block.color
        if block.rotation:
            attrs["transform"] = (
                f"rotate({_px(block.rotation)} {_px(block.x or 0)} {_px(block.y or 0)})"
            )
        text = ET.SubElement(svg, f"{{{_SVG_NS}}}text", attrs)
        text.text = block.text
    body: bytes = ET.tostring(svg, encoding="utf-8", xml_declaration=True)
    return body
