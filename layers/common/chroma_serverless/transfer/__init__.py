"""Bulk transfer of records: ``import`` from Parquet, JSONL or CSV files and ``export`` to Parquet
or JSONL, local or on S3, straight to storage or through any running endpoint's HTTP API.

``files`` finds and opens files; ``columns`` maps a file's columns onto records; ``sources`` reads
files as column batches; ``endpoints`` and ``http`` are where records go and come from (storage,
or the v2 API with a token); ``checkpoint`` makes an import resumable; ``progress`` reports it;
``importer``, ``exporter`` and ``manifest`` are the two commands and the export's table of
contents.
"""
