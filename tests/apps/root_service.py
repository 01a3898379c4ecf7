"""A public service at the route prefix `/`, whose own paths sit beside the server's (`/docs`, `/docs/specs.json`)."""

import fnserve as fs


@fs.service(name="rooted", route_prefix="/", auth=False)
def rooted() -> dict[str, str]:
    """Lives at the root."""
    return {}


@rooted.endpoint("/hi")
def hi() -> str:
    return "hi"
