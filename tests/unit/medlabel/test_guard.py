import pytest

from medlabel.errors import BadRequest
from medlabel.server.guard import check_image_id


@pytest.mark.parametrize("good", ["lits117_subvolume_x0y0z0", "1.2.840.113619.2.55.3", "case-01", "a"])
def test_ids_that_name_entries_pass(good):
    assert check_image_id(good) == good


@pytest.mark.parametrize("bad", ["../x", "a/b", "a\\b", "..", ".hidden", "", "x" * 300, "a..b", "/etc/passwd", "a b"])
def test_path_like_ids_are_rejected(bad):
    with pytest.raises(BadRequest, match="not allowed"):
        check_image_id(bad)


def _call_guard(path: str, query: bytes, queued: dict | None):
    """Runs one POST through the guard around a recording app; returns (scope seen by app, response)."""
    import asyncio
    import json

    from medlabel.server.guard import Catalogue, RequestGuard

    seen, sent = {}, []

    async def app(scope, receive, send):
        seen.update(scope)

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(message):
        sent.append(message)

    names = lambda: {"liver_ct"}  # noqa: E731
    guard = RequestGuard(app, Catalogue(names, names, names, names, queued_training=lambda: queued))
    scope = {"type": "http", "method": "POST", "path": path, "query_string": query, "headers": []}
    asyncio.run(guard(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return seen, (json.loads(body) if body else None)


def test_training_request_waits_for_a_running_one_instead_of_429():
    seen, response = _call_guard("/train/liver_ct", b"run_sync=false&enqueue=false", queued=None)
    assert seen["query_string"] == b"run_sync=false&enqueue=true" and response is None


def test_training_request_while_one_is_queued_answers_with_the_queued_one():
    seen, response = _call_guard("/train/liver_ct", b"", queued={"id": "abc", "status": "SUBMITTED"})
    assert not seen and response["id"] == "abc" and "already queued" in response["detail"]
