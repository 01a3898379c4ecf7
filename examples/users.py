"""Path parameters and several HTTP methods on one resource."""

import fnserve as fs


@fs.service(auth=False)
def users() -> dict[str, object]:
    """A tiny in-memory user directory (one per replica)."""
    return {"db": {1: {"user_id": 1, "name": "Ada"}}}


@users.endpoint("/users/{user_id}", method="GET")
def get_user(user_id: int, db: dict[int, dict[str, object]]) -> dict[str, object]:
    """Fetch one user."""
    if user_id not in db:
        raise KeyError(f"no user {user_id}")
    return db[user_id]


@users.endpoint("/users/{user_id}", method="PUT")
def put_user(user_id: int, name: str, db: dict[int, dict[str, object]]) -> dict[str, object]:
    """Create or rename a user."""
    db[user_id] = {"user_id": user_id, "name": name}
    return db[user_id]


@users.endpoint("/users/{user_id}", method="DELETE")
def delete_user(user_id: int, db: dict[int, dict[str, object]]) -> dict[str, bool]:
    """Remove a user; says whether it existed."""
    return {"deleted": db.pop(user_id, None) is not None}
