"""msrkit as an MCP server: the server and its tools, their typed and capped inputs, who may call it
over HTTP. (Inside this package ``import mcp`` is still the MCP SDK: imports are absolute.)
"""
