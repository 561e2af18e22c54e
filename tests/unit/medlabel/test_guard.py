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


def _call_guard(path: str, query: bytes, queued: dict | None, final_labels: int | None = None, method: str = "POST",
                image_exists=lambda _id: None, label_free: frozenset = frozenset()):
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

    names = lambda: {"liver_ct", "ct_denoise"}  # noqa: E731
    catalogue = Catalogue(names, names, names, names, image_exists=image_exists, queued_training=lambda: queued,
                          final_labels=lambda: final_labels, label_free_trainers=lambda: set(label_free))
    guard = RequestGuard(app, catalogue)
    scope = {"type": "http", "method": method, "path": path, "query_string": query, "headers": []}
    asyncio.run(guard(scope, receive, send))
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return seen, (json.loads(body) if body else None)


def test_training_request_waits_for_a_running_one_instead_of_429():
    seen, response = _call_guard("/train/liver_ct", b"run_sync=false&enqueue=false", queued=None)
    assert seen["query_string"] == b"run_sync=false&enqueue=true" and response is None


def test_training_request_while_one_is_queued_answers_with_the_queued_one():
    seen, response = _call_guard("/train/liver_ct", b"", queued={"id": "abc", "status": "SUBMITTED"})
    assert not seen and response["id"] == "abc" and "already queued" in response["detail"]


@pytest.mark.parametrize("path", ["/train/", "/train/liver_ct"])
def test_training_without_any_final_label_is_a_conflict_with_a_message(path):
    """OHIF's "Update Model" posts /train/ whatever the datastore holds; stock monailabel accepts it and the
    training process later dies on an empty sampler."""
    from medlabel.errors import Conflict

    with pytest.raises(Conflict, match="no image has a final label") as raised:
        _call_guard(path, b"", queued=None, final_labels=0)
    assert raised.value.status_code == 409 and "PUT /datastore/label" in raised.value.detail


@pytest.mark.parametrize("count", [1, None])  # None: the datastore cannot say (the check is skipped)
def test_training_with_final_labels_or_an_unknown_count_goes_through(count):
    seen, response = _call_guard("/train/liver_ct", b"", queued=None, final_labels=count)
    assert seen["query_string"] == b"enqueue=true" and response is None


def test_a_self_supervised_trainer_trains_without_labels_and_the_others_still_need_them():
    """Restoration learns from the images alone; the label check still guards every other trainer."""
    from medlabel.errors import Conflict

    seen, response = _call_guard("/train/ct_denoise", b"", queued=None, final_labels=0, label_free={"ct_denoise"})
    assert seen["query_string"] == b"enqueue=true" and response is None
    for path in ("/train/liver_ct", "/train/"):
        with pytest.raises(Conflict, match="no image has a final label"):
            _call_guard(path, b"", queued=None, final_labels=0, label_free={"ct_denoise"})


def test_uploads_name_new_images_and_every_other_request_needs_an_existing_one():
    """The Slicer client uploads with PUT /datastore/?image=NEW; an infer on an unknown image is a 404."""
    from medlabel.errors import NotFound

    unknown = lambda _id: False  # noqa: E731
    for path in ("/datastore/", "/datastore/image"):
        seen, response = _call_guard(path, b"image=new_case", None, method="PUT", image_exists=unknown)
        assert seen and response is None
    with pytest.raises(NotFound, match="not in the datastore"):
        _call_guard("/infer/liver_ct", b"image=new_case", None, image_exists=unknown)
