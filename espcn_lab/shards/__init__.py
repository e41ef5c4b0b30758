"""The on-disk sample contract, both sides: shard format and manifest, the fast reader, locating shards.

Rule: imports numpy, webdataset, ``espcn_lab.errors`` and ``espcn_lab.imaging`` only; the writer in
``data_prep`` and the readers in ``train`` meet here and nowhere else.
"""
