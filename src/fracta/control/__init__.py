"""The control plane (server side) and the light client the CLI uses to reach it."""
