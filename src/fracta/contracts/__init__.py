"""One typed contract per operation: the request and result models every face is built from.

The REST routes validate their bodies with these models, the MCP tools publish them as input and
output schemas, the OpenAPI document is generated from them, and the CLI's `--json` output (plain
dicts from fracta/results.py, so that pydantic stays off the CLI's fast paths) is validated
against them by the tests. docs/json.md's field tables are generated from them too.

Imports pydantic: only the control plane, the gateway and the tests import this package.
"""
