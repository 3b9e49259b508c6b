"""The record store on LanceDB (``store.py``), one table per collection under a root URI (a
local directory or ``s3://``): the data plane's side of the
:class:`~chroma_serverless.ports.RecordStore` seam."""
