"""Observability, cut as Powertools cuts it: ``context`` (the unit of work and its keys),
``logs``, ``metrics`` (CloudWatch EMF), ``tracing`` (X-Ray on Lambda) and ``setup`` (once per
process)."""
