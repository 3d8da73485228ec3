"""The Kubernetes Job launcher (`launcher.kind: kubernetes`; the `fracta[k8s]` extra).

settings (launcher.kubernetes, typed) → manifest (the Job of one turn, plain data) → api (the
official client: the only import of `kubernetes`) → launcher (start, stop, output) → watch and
settle (Job status followed by watch; turns whose runner could not record are settled).
Importing this package imports nothing heavy; `launcher` and `api` do.
"""
