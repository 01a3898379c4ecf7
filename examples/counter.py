"""A class service: `__init__` runs once per replica, `self` is the state, marked methods are routes."""

import fnserve as fs


@fs.service(name="counter", auth=False)
class Counter:
    """Counts, per replica."""

    def __init__(self, start: int = 0) -> None:
        self.count = start

    @fs.endpoint("/increment")
    def increment(self, by: int = 1) -> int:
        """Add `by` and return the new count."""
        self.count += by
        return self.count

    @fs.endpoint("/value", method="GET")
    async def value(self) -> int:
        """The current count."""
        return self.count
