"""Queued invocations: the batching writer that makes jobs durable, and the dispatcher that runs them."""
