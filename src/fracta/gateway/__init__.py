"""The gateway: fracta's MCP tools over streamable HTTP, identity, discovery and the backend proxy."""
