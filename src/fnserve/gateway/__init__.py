"""The data plane: routes `/{route_prefix}/...` requests to replicas and streams their answers back."""
