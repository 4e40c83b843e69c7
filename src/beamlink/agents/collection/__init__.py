"""The collection data agent: serves one root directory and moves files into and out of it.

The modules here are the pure, local-filesystem foundations: ``config`` (``config.yaml``), ``paths``
(confinement to the root, names that are not UTF-8), ``checksums``, ``fsops`` (ls, stat, mkdir, rename,
delete), ``plan`` (sync decisions) and ``partial`` (atomic, resumable writes and the same-host copy).
"""
