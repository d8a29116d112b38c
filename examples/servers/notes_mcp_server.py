"""A tiny MCP server over stdio, for ``examples/mcp-demo.vega.yaml``.

Standard library only (it runs under any ``python3``), newline-delimited JSON-RPC as
the MCP stdio transport says. It offers two tools:

* ``add_note(text)`` — keep a note (for the life of the server process);
* ``list_notes()`` — every note kept so far, one per line.

Run by the MCP client, not by hand: it waits for JSON-RPC requests on stdin.
"""

import json
import sys

NOTES = []

TOOLS = [
    {
        "name": "add_note",
        "description": "Keep a short note.",
        "inputSchema": {
            "type": "object",
            "properties": {"text": {"type": "string", "description": "The note."}},
            "required": ["text"],
        },
    },
    {
        "name": "list_notes",
        "description": "Every note kept so far, one per line.",
        "inputSchema": {"type": "object", "properties": {}},
    },
]


def call_tool(name, arguments):
    if name == "add_note":
        NOTES.append(str(arguments.get("text", "")))
        return f"noted ({len(NOTES)} note(s) kept)", False
    if name == "list_notes":
        return "\n".join(NOTES) or "(no notes yet)", False
    return f"unknown tool {name!r}", True


def answer(request):
    method = request.get("method")
    params = request.get("params") or {}
    if method == "initialize":
        return {
            "protocolVersion": params.get("protocolVersion", "2025-06-18"),
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": "notes", "version": "1.0.0"},
        }
    if method == "ping":
        return {}
    if method == "tools/list":
        return {"tools": TOOLS}
    if method == "tools/call":
        text, is_error = call_tool(params.get("name"), params.get("arguments") or {})
        return {"content": [{"type": "text", "text": text}], "isError": is_error}
    raise LookupError(method)


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        if "id" not in request:  # a notification (e.g. notifications/initialized)
            continue
        try:
            reply = {"jsonrpc": "2.0", "id": request["id"], "result": answer(request)}
        except LookupError:
            error = {"code": -32601, "message": f"method not found: {request.get('method')}"}
            reply = {"jsonrpc": "2.0", "id": request["id"], "error": error}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
