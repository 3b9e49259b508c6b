"""Control-plane Lambda (zip + layer): system, tenant, database and collection routes.

Settings, logs/metrics/tracing and the app are set up once per execution environment, at import
(Lambda's INIT phase); every invocation reuses them. Lifespan is off: Mangum would otherwise run
startup and shutdown on every invocation.
"""

from __future__ import annotations

from mangum import Mangum

from chroma_serverless.http.app import build_app
from chroma_serverless.observe import setup
from chroma_serverless.settings import Settings

settings = Settings.from_env()
setup.configure(settings)
app = build_app(settings, planes=("control",))
handler = Mangum(app, lifespan="off")
