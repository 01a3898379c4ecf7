"""Services working together: handles between services, dynamic batching, model multiplexing (replica side and
gateway side; docs/COMPOSITION.md). One module per concept; nothing here is imported by a replica that does not use
it."""
