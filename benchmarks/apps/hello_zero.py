"""The hello service scaled to zero when idle: the cold-start benchmark times the call that wakes it."""

import fnserve as fs


@fs.service(
    name="hello-zero",
    autoscaling=fs.Autoscaling(
        min_replicas=0, max_replicas=1, target_ongoing_requests=1, upscale_delay_s=0, downscale_delay_s=0.2
    ),
)
def hello_zero() -> dict[str, object]:
    """A service with nothing to load and no replica while idle: each call after a pause starts one."""
    return {}


@hello_zero.endpoint("/hello")
def say_hello() -> str:
    return "hello"
