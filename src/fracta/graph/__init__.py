"""The knowledge graph agents share: FalkorDB, embedded under .fracta/graph/ or a service.

settings.py reads fracta.yaml's `graph:`; server.py runs the embedded server beside the control
plane; client.py talks to FalkorDB (read-only queries enforced by the server, writes, schema);
ops.py is the core the faces (gateway tools, CLI) and a strategy runner call. falkordb is imported
only by client.py and server.py, so nothing on the CLI's fast paths pays for it.
"""
