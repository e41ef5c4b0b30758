"""Scoring: the one protocol and scoring path shared by validation during ``fit`` and ``espcn-lab eval``,
metrics, ensembles and the paper's figures.

Rule: may import ``deploy`` (device choice, video frames, the upscaler for pictures), ``imaging``,
``shards`` and the core; never ``train`` or Lightning.
"""
