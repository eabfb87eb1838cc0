"""The only place that knows real AWS: ``batchbook aws setup``, ``teardown``, ``doctor`` and
``image`` (the resources a working queue needs, made and found by their tag), and the
config file that ``batch.use("aws")`` reads. Tested against moto's server, never AWS."""
