"""Training: the batch stream, DataModule, LightningModule, ``fit``, the end-of-run report and ``refit``.

Rule: the only package that imports Lightning. It may import every library package below it
(``evaluate``, ``deploy``, ``shards``, ``imaging``) and the top-level core; nothing imports it but the CLI,
``quickstart`` and tests (``sweep`` reaches it only through the ``espcn-lab fit`` command).
"""
