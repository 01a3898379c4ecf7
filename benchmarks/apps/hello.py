"""The hello service the cold-start benchmark deploys: one trivial endpoint, one fixed replica."""

import fnserve as fs


@fs.service(name="hello")  # auth on, like a real service: requests carry the owner key
def hello() -> dict[str, object]:
    """A service with nothing to load, so a deploy measures the platform's own start-up."""
    return {}


@hello.endpoint("/hello")
def say_hello() -> str:
    return "hello"
