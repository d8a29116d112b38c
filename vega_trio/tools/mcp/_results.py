"""What the model is shown for an MCP tool result."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import mcp_types

__all__ = ["render_mcp_result"]


def _decoded_size(data: str) -> int:
    """Bytes encoded by a base64 string, without decoding it."""
    stripped = data.strip()
    padding = len(stripped) - len(stripped.rstrip("="))
    return max(0, len(stripped) * 3 // 4 - padding)


def _size(n: int) -> str:
    return "1 byte" if n == 1 else f"{n} bytes"


def _render_block(block: mcp_types.ContentBlock) -> str:
    import mcp_types  # NOTE: imported late, as the rest of the SDK (see _connection)

    if isinstance(block, mcp_types.TextContent):
        return block.text
    if isinstance(block, mcp_types.ImageContent):
        return f"[image: {block.mime_type}, {_size(_decoded_size(block.data))}]"
    if isinstance(block, mcp_types.AudioContent):
        return f"[audio: {block.mime_type}, {_size(_decoded_size(block.data))}]"
    if isinstance(block, mcp_types.ResourceLink):
        details = [block.name]
        if block.mime_type:
            details.append(block.mime_type)
        if block.size is not None:
            details.append(_size(block.size))
        line = f"[resource link: {block.uri} ({', '.join(details)})]"
        return f"{line} {block.description}" if block.description else line
    if isinstance(block, mcp_types.EmbeddedResource):
        resource = block.resource
        mime = resource.mime_type or "unknown type"
        if isinstance(resource, mcp_types.TextResourceContents):
            return f"[resource: {resource.uri} ({mime})]\n{resource.text}"
        return f"[resource: {resource.uri} ({mime}, {_size(_decoded_size(resource.blob))})]"
    # A content type newer than this client: say what it is rather than drop it.
    return f"[{getattr(block, 'type', type(block).__name__)} content]"


def render_mcp_result(result: mcp_types.CallToolResult) -> str:
    """The text the model is shown for an MCP tool result.

    Text blocks are joined with newlines; images and audio are described by MIME type and
    size; resource links by URI, name, MIME type and size; embedded resources by URI and
    MIME type, with a text resource's text included. A result without content blocks is
    shown as its structured content (JSON), if any. ``is_error`` is not looked at here
    (MCP tools raise :class:`~vega_trio.tools.MCPToolError` for it).
    """
    parts = [_render_block(block) for block in result.content]
    if not parts and result.structured_content is not None:
        return json.dumps(result.structured_content, ensure_ascii=False, separators=(",", ":"))
    return "\n".join(parts)
