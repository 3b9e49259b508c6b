"""The catalog seam's implementations (:class:`~chroma_serverless.ports.Catalog` and
:class:`~chroma_serverless.ports.Credentials`): SQLite in the data directory (the embedded
default, ``sqlite/``) and one DynamoDB table (AWS, ``dynamodb/``). Both pass the contract suite."""
