"""Services working together: handles between services, dynamic batching, multiplexing (replica side + gateway
side). One module per concept; nothing here is imported by a replica that does not use it."""
