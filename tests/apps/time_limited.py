"""Services with a time limit: one that runs out within the test, one that does not."""

import fnserve as fs


@fs.service(name="short_lived", time_limit="1.5s", auth=False)
def short_lived() -> dict[str, int]:
    return {}


@short_lived.endpoint("/ping-me", method="GET")
def ping_me() -> str:
    return "pong"


@fs.service(name="long_lived", time_limit="1h", auth=False)
def long_lived() -> dict[str, int]:
    return {}


@long_lived.endpoint("/ping-me", method="GET")
def ping_me_too() -> str:
    return "pong"


@fs.service(name="medium_lived", time_limit="3s", auth=False)
def medium_lived() -> dict[str, int]:
    return {}
