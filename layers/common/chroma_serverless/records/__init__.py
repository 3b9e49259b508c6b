"""The record store: one LanceDB table per collection under a root URI (local dir or ``s3://``).

``store`` opens tables and carries out Chroma's reads and writes; ``arrow`` holds the pure
columnar conversions; ``search`` plans nearest-neighbour queries on the engine; ``indexing``
builds indexes and compacts; ``engine`` is what they share about LanceDB.
"""

from chroma_serverless.records.store import LanceRecordStore, RecordStore

__all__ = ["LanceRecordStore", "RecordStore"]
