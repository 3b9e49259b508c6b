"""The v2 API's path prefixes."""

API = "/api/v2"
DATABASE = API + "/tenants/{tenant}/databases/{database}"
COLLECTION = DATABASE + "/collections/{collection_id}"
