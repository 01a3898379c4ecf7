"""A service that claims echo's route prefix under another name, to provoke `service_exists`."""

import fnserve as fs


@fs.service(name="echo_clash", route_prefix="/echo", auth=False)
def echo_clash() -> dict[str, str]:
    return {}


@echo_clash.endpoint("/echo")
def clash() -> str:
    return "clash"
