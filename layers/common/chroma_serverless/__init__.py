"""chroma-serverless: a serverless, Chroma-compatible vector database on LanceDB."""

__version__ = "0.1.0"
