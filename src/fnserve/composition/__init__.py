"""Services working together: handles between services, dynamic batching, model multiplexing (docs/COMPOSITION.md)."""
