"""The API's wire format: request bodies as pydantic models with Chroma's field names
(``requests``) and every response shape, both ways (``responses``)."""
