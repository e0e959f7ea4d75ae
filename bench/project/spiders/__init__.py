"""Spiders of the bench project: ``shop`` (throughput, start-up) and ``latency`` (delays)."""
