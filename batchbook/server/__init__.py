"""The local service: the engine behind the Batch REST-JSON and CloudWatch Logs APIs on loopback."""
