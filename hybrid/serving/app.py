"""``hybrid serve``: the two-stage recommender over HTTP (FastAPI on uvicorn) and a small page.

    hybrid serve --model artifacts/recommender --port 8000     # then open http://127.0.0.1:8000/

The model directory is loaded once and answered from memory. The API lives under ``/api``
(OpenAPI at ``/docs``); the page at ``/`` uses only that API. What a request can and cannot do:

- every answer is JSON; bad input is a 4xx whose ``detail`` names the field or id at fault
  (unknown user: 404 with the hint to use the new-user endpoint; N or a batch out of range:
  422; a body over ``max_body_bytes``: 413); an unexpected failure is a 500 with a short
  message, never a traceback;
- an id in a path may hold any character, ``/`` included, percent-encoded (``/api/items/a%2Fb``);
  ``.../similar`` at its end is the similar-items route;
- nothing changes what the service holds without the admin token (``ServiceLimits``):
  ``POST /api/admin/reload`` and ``POST /api/items`` need ``Authorization: Bearer TOKEN`` and are
  off when the service has no token; a ``Host`` header the service does not answer to is a 400
  (DNS rebinding), and the API adds at most ``max_added_items`` products to a loaded model;
- no request names a file: ``POST /api/admin/reload`` (or ``SIGHUP``) loads the configured
  directory again in a new process beside the one serving, which hands the socket over only
  once the new model has loaded and warmed up (:mod:`hybrid.serving.handover`), so no request fails
  during a reload and a failed load leaves the old model serving;
- model calls run on the event loop one at a time, each a few milliseconds (numpy, scipy and faiss
  use the cores within a call; faiss searches one query on one thread); a batch request
  (``ids x n`` answers, at most ``max_answers``) of more than ``SMALL_BATCH`` ids runs in slices
  of about ``slice_ms``, one such batch at a time, and the requests that arrive meanwhile are
  answered between its slices.
"""

import asyncio
import hmac
import json
import logging
import os
import time
from importlib import resources
from typing import Literal

import orjson

from hybrid import __version__
from hybrid.core.errors import ArgumentError, HybridError, UnknownIdError
from hybrid.serving.slot import ModelLoadError, ModelSlot, ServiceLimits, add_records

LOG = logging.getLogger("hybrid.serving.app")
SMALL_BATCH = 10  # ids a batch request may have to be answered at once, as a single call is


def _fastapi():
    try:
        import fastapi  # noqa: F401
        import pydantic  # noqa: F401
    except ImportError:  # pragma: no cover - both are dependencies
        raise ArgumentError("the service needs fastapi and uvicorn: pip install fastapi uvicorn") from None


def create_app(model_dir: str | os.PathLike | ModelSlot, limits: ServiceLimits | None = None):
    """The FastAPI application serving ``model_dir`` (a saved recommender), or the model of a
    ``ModelSlot`` (whose reload loads in a thread of this process; the ``WorkerSlot`` of a
    :mod:`hybrid.serving.handover` worker loads it in a new process)."""
    _fastapi()
    from fastapi import FastAPI

    limits = limits or ServiceLimits()
    answers = _Answers(model_dir if isinstance(model_dir, ModelSlot) else ModelSlot(model_dir), limits)
    app = FastAPI(title="hybrid recommender", version=__version__,
                  description="Recommendations, cold start and similar products from a two-stage "
                              "hybrid recommender. Every error is JSON with a `detail`.")
    app.state.slot, app.state.limits = answers.slot, limits
    app.add_middleware(BodyLimit, limit=limits.max_body_bytes)
    app.add_middleware(HostCheck, allowed=limits.allowed_hosts)
    _error_handlers(app)
    schemas = {**_response_models(), **_request_models(limits)}
    _user_routes(app, answers, schemas)
    _item_routes(app, answers, schemas)
    _service_routes(app, answers)
    return app


class _Answers:
    """What every endpoint shares: the serving model and the checks and shapes of answers."""

    def __init__(self, slot: ModelSlot, limits: ServiceLimits):
        self.slot, self.limits = slot, limits
        self.batches = asyncio.Semaphore(1)  # batches wait here without holding the event loop

    def require_admin(self, authorization: str | None) -> None:
        """Refuse a state-changing request without the service's admin token: 403 where the
        service has none, 401 where the header is missing or wrong."""
        from fastapi import HTTPException

        if self.limits.admin_token is None:
            raise HTTPException(403, "this endpoint is off: start `hybrid serve` with --admin-token-file FILE "
                                     "(or HYBRID_ADMIN_TOKEN set) and send 'Authorization: Bearer TOKEN'")
        scheme, _, token = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.limits.admin_token.encode()):
            raise HTTPException(401, "this endpoint needs the admin token: 'Authorization: Bearer TOKEN'",
                                headers={"WWW-Authenticate": "Bearer"})

    def on_model(self, work):
        """``work(rec)`` on the serving model. Called from the event loop: model calls run one at a
        time (a few ms each; numpy, scipy and faiss use the cores within a call) with no
        thread hand-off, and a request sees one model from its first id check to its last title,
        whatever a reload (in a worker thread) swaps in meanwhile."""
        return work(self.slot.current.rec)

    async def in_slices(self, ids: list[str], n: int, work):
        """The JSON answer ``{"results": [...]}`` of ``work(rec, some_ids)`` (a list of answers,
        one per id) over ``ids``. A batch of more than ``SMALL_BATCH`` ids runs in slices of about
        ``slice_ms``, each answered and encoded in its slice, yielding the event loop between
        slices so that the requests which arrived meanwhile are answered; such batches run one
        at a time. One model answers the whole batch. More than ``max_answers`` answers
        (``len(ids) * n``) are refused."""
        from fastapi.responses import Response

        if len(ids) * n > self.limits.max_answers:
            raise ArgumentError(f"{len(ids)} ids x n={n} is {len(ids) * n} answers; one request gets at most "
                                f"{self.limits.max_answers} (max_answers): send fewer ids or a smaller n")
        rec = self.slot.current.rec
        if len(ids) <= SMALL_BATCH:
            parts = [orjson.dumps(work(rec, ids))[1:-1]]
        else:
            parts, done, size, target = [], 0, 1, self.limits.slice_ms / 1000
            async with self.batches:
                while done < len(ids):
                    started = time.perf_counter()
                    parts.append(orjson.dumps(work(rec, ids[done:done + size]))[1:-1])
                    done += size
                    took = max(time.perf_counter() - started, 1e-4)
                    size = max(1, min(2 * size, int(size * target / took)))  # grows at most twice per slice
                    await asyncio.sleep(0)
        return Response(b'{"results":[' + b",".join(parts) + b"]}", media_type="application/json")

    @staticmethod
    def items_of(rec, ids, scores) -> list[dict]:
        keep = [i for i, item in enumerate(ids) if item is not None]
        if not keep:
            return []
        rows = rec.catalogue.index([ids[i] for i in keep])
        return [{"item_id": str(ids[i]), "score": float(scores[i]), "title": rec.catalogue.titles[r],
                 "cold": bool(rec.catalogue.cold[r])} for i, r in zip(keep, rows)]

    @staticmethod
    def explain(rec, items: list[dict], method: str, **request) -> None:
        """Each answered item with its ``why`` line and its explanation: the entry of
        ``rec.<method>(item_ids, **request)`` (``explain`` or ``explain_new_user``)."""
        if not hasattr(rec, method):
            raise ArgumentError("why=true needs the two-stage recommender; this service holds another kind")
        for item, entry in zip(items, getattr(rec, method)(item_ids=[item["item_id"] for item in items], **request)):
            item.update(why=rec.why(entry), explanation=entry)

    @staticmethod
    def known_users(rec, user_ids: list[str]) -> None:
        unknown = [u for u in user_ids if u not in rec.users]
        if unknown:
            raise UnknownIdError(f"unknown user id(s): {unknown[:5]}: the model never saw "
                                 f"{'this user' if len(unknown) == 1 else 'these users'}; for a new user "
                                 "POST their liked item ids and/or a sentence to /api/recommendations/new-user")

    def text_query(self, text: str) -> str:
        if len(text) > self.limits.max_text:
            raise ArgumentError(f"text: at most {self.limits.max_text} characters, got {len(text)}")
        if not text.strip():
            raise ArgumentError("text: give some words")
        return text


def _response_models() -> dict:
    from pydantic import BaseModel, Field

    class Item(BaseModel):
        item_id: str
        score: float
        title: str | None
        cold: bool = Field(description="no ratings in training: known from its text only")

    class ExplainedItem(Item):
        why: str | None = Field(None, description="with why=true: why it is recommended, in words")
        explanation: dict | None = Field(
            None, description="with why=true: each part's share of the score (with the offset they add up to "
                              "it), the liked products and the words that led to it (TwoStageRecommender.explain)")

    class Answer(BaseModel):
        items: list[Item]

    class UserAnswer(Answer):
        user_id: str
        items: list[ExplainedItem]  # why and explanation only when asked (the route leaves unset fields out)

    class NewUserAnswer(Answer):
        items: list[ExplainedItem]  # why and explanation only when asked

    class ItemAnswer(Answer):
        item_id: str

    class Batch(BaseModel):
        results: list[UserAnswer]

    class ItemBatch(BaseModel):
        results: list[ItemAnswer]

    class Details(BaseModel):
        item_id: str
        title: str | None
        text: str | None
        cold: bool
        ratings: int = Field(description="ratings of the item the model was trained on")
        likes: int

    class DetailsBatch(BaseModel):
        items: list[Details]

    class History(BaseModel):
        user_id: str
        rated: list[Details] = Field(description="likes first, then the newest first")
        liked: list[bool]
        rated_at: list[int | None] = Field(description="when each was rated, seconds since 1970 (null: not known)")

    class Added(BaseModel):
        added: int
        items: int

    return {model.__name__: model for model in (Answer, UserAnswer, NewUserAnswer, ItemAnswer, Batch, ItemBatch, Details,
                                                 DetailsBatch, History, Added)}


DIVERSITY = "0 to 1: how much each next product must differ in content from those above it (0: by score alone)"
POPULARITY_PENALTY = "0 or more: how much a product's popularity counts against it (0: not at all)"
MAX_PENALTY = 100.0  # far past any useful penalty: at 100 popularity alone orders the list


def _request_models(limits: ServiceLimits) -> dict:
    from pydantic import BaseModel, ConfigDict, Field

    Ids = list[str]

    class Choice(BaseModel):
        model_config = ConfigDict(extra="forbid")
        n: int = Field(10, ge=1, le=limits.max_n)
        items: Ids | None = Field(None, max_length=limits.max_batch * 100,
                                  description="choose only among these item ids")
        filter_items: Ids | None = Field(None, max_length=limits.max_batch * 100,
                                         description="never answer these item ids")
        include_cold: bool = True
        diversity: float = Field(0.0, ge=0, le=1, allow_inf_nan=False, description=DIVERSITY)
        popularity_penalty: float = Field(0.0, ge=0, le=MAX_PENALTY, allow_inf_nan=False,
                                          description=POPULARITY_PENALTY)

    class RecommendRequest(Choice):
        user_ids: Ids = Field(min_length=1, max_length=limits.max_batch)
        filter_already_liked_items: bool = True

    class NewUserRequest(Choice):
        liked_items: Ids = Field(default_factory=list, max_length=limits.max_batch)
        text: str | None = Field(None, max_length=limits.max_text)
        why: bool = Field(False, description="say why each product is recommended")

    class SimilarRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        item_ids: Ids = Field(min_length=1, max_length=limits.max_batch)
        by: Literal["content", "collaborative"] = "content"
        n: int = Field(10, ge=1, le=limits.max_n)

    class DetailsRequest(BaseModel):
        item_ids: Ids = Field(min_length=1, max_length=limits.max_batch)

    class NewItem(BaseModel):
        model_config = ConfigDict(extra="allow")  # metadata fields (description, feature, ...)
        item_id: str = Field(min_length=1, max_length=200)
        title: str | None = Field(None, max_length=limits.max_text)
        text: str | None = Field(None, max_length=limits.max_text)

    class AddRequest(BaseModel):
        items: list[NewItem] = Field(min_length=1, max_length=limits.max_batch)

    return {model.__name__: model for model in (RecommendRequest, NewUserRequest, SimilarRequest, DetailsRequest,
                                                 AddRequest)}


def _error_handlers(app) -> None:
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    @app.exception_handler(UnknownIdError)
    async def unknown(_, exc: UnknownIdError):
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(HybridError)
    async def refused(_, exc: HybridError):
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def invalid(_, exc: RequestValidationError):
        errors = [{"field": _field(e), "message": e.get("msg")} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception):
        LOG.exception("request %s %s failed", request.method, request.url.path)
        return JSONResponse({"detail": f"internal error ({type(exc).__name__}); see the server log"},
                            status_code=500)


def _user_routes(app, answers: _Answers, m: dict) -> None:
    from fastapi import Path as PathParam
    from fastapi import Query
    from fastapi.responses import Response

    on_model, items_of, known_users, explain = answers.on_model, answers.items_of, answers.known_users, answers.explain
    RecommendRequest, NewUserRequest = m["RecommendRequest"], m["NewUserRequest"]  # noqa: N806 (request types)
    N = Query(10, ge=1, le=answers.limits.max_n, description=f"how many items, 1 to {answers.limits.max_n}")

    @app.get("/api/users/{user_id:path}/recommendations", response_model=m["UserAnswer"],
             response_model_exclude_unset=True)  # why and explanation only when asked
    async def recommend_user(user_id: str = PathParam(max_length=200), n: int = N,
                             filter_already_liked_items: bool | None = Query(
                                 None, description="leave out what the user rated (default true)"),
                             filter_liked: bool | None = Query(
                                 None, deprecated=True, description="the former name of filter_already_liked_items"),
                             include_cold: bool = True,
                             diversity: float = Query(0.0, ge=0, le=1, allow_inf_nan=False, description=DIVERSITY),
                             popularity_penalty: float = Query(0.0, ge=0, le=MAX_PENALTY, allow_inf_nan=False,
                                                               description=POPULARITY_PENALTY),
                             why: bool = Query(False, description="say why each product is recommended")):
        chosen = [f for f in (filter_already_liked_items, filter_liked) if f is not None]

        def work(rec):
            known_users(rec, [user_id])
            items = items_of(rec, *rec.recommend(user_id, N=n, filter_already_liked_items=chosen[0] if chosen else True,
                                                 include_cold=include_cold, diversity=diversity,
                                                 popularity_penalty=popularity_penalty))
            if why and items:
                explain(rec, items, "explain", user_id=user_id)
            return items
        # encoded here: the answer has UserAnswer's shape already, and validating it again
        # costs a fifth of a busy service's time per request
        return Response(orjson.dumps({"user_id": user_id, "items": on_model(work)}), media_type="application/json")

    @app.post("/api/recommendations", response_model=m["Batch"])
    async def recommend_users(request: RecommendRequest):
        on_model(lambda rec: known_users(rec, request.user_ids))

        def work(rec, users):
            ids, scores = rec.recommend(users, N=request.n,
                                        filter_already_liked_items=request.filter_already_liked_items,
                                        filter_items=request.filter_items, items=request.items,
                                        include_cold=request.include_cold, diversity=request.diversity,
                                        popularity_penalty=request.popularity_penalty)
            return [{"user_id": u, "items": items_of(rec, i, s)} for u, i, s in zip(users, ids, scores)]
        return await answers.in_slices(request.user_ids, request.n, work)

    @app.get("/api/users/{user_id:path}", response_model=m["History"])
    async def user_history(user_id: str = PathParam(max_length=200)):
        def work(rec):
            known_users(rec, [user_id])
            ids, liked, rated_at = rec.user_history(user_id)
            return {"user_id": user_id, "rated": rec.item_details(ids) if len(ids) else [],
                    "liked": [bool(x) for x in liked], "rated_at": [int(t) if t >= 0 else None for t in rated_at]}
        return on_model(work)

    @app.post("/api/recommendations/new-user", response_model=m["NewUserAnswer"],
              response_model_exclude_unset=True)  # why and explanation only when asked
    async def recommend_new_user(request: NewUserRequest):
        text = request.text if request.text and request.text.strip() else None
        if not request.liked_items and text is None:
            raise ArgumentError("give liked_items (item ids) and/or text (what the person likes)")

        def work(rec):
            items = items_of(rec, *rec.recommend_for_new_user(
                liked_items=request.liked_items, text=text, N=request.n, filter_items=request.filter_items,
                items=request.items, include_cold=request.include_cold, diversity=request.diversity,
                popularity_penalty=request.popularity_penalty))
            if request.why and items:
                explain(rec, items, "explain_new_user", liked_items=request.liked_items, text=text)
            return items
        return {"items": on_model(work)}


def _item_routes(app, answers: _Answers, m: dict) -> None:
    from fastapi import Body, Header, HTTPException, Query
    from fastapi import Path as PathParam

    on_model, items_of = answers.on_model, answers.items_of
    DetailsRequest, SimilarRequest, AddRequest = m["DetailsRequest"], m["SimilarRequest"], m["AddRequest"]  # noqa: N806
    N = Query(10, ge=1, le=answers.limits.max_n, description=f"how many items, 1 to {answers.limits.max_n}")

    @app.post("/api/items/details", response_model=m["DetailsBatch"])
    async def items_details(request: DetailsRequest):
        return {"items": on_model(lambda rec: rec.item_details(request.item_ids))}

    @app.get("/api/items/{item_id:path}/similar", response_model=m["ItemAnswer"])
    async def similar(item_id: str = PathParam(max_length=200), n: int = N,
                      by: Literal["content", "collaborative"] = "content"):
        return {"item_id": item_id, "items": on_model(lambda rec: items_of(rec, *rec.similar_items(item_id, N=n, by=by)))}

    @app.get("/api/items/{item_id:path}", response_model=m["Details"])
    async def item(item_id: str = PathParam(max_length=200)):
        return on_model(lambda rec: rec.item_details([item_id])[0])

    @app.post("/api/items/similar", response_model=m["ItemBatch"])
    async def similar_batch(request: SimilarRequest):
        on_model(lambda rec: rec.catalogue.index(request.item_ids))  # every id known, or a 404 now

        def work(rec, items):
            ids, scores = rec.similar_items(items, N=request.n, by=request.by)
            return [{"item_id": item_id, "items": items_of(rec, i, s)} for item_id, i, s in zip(items, ids, scores)]
        return await answers.in_slices(request.item_ids, request.n, work)

    @app.get("/api/search", response_model=m["Answer"])
    async def search(text: str = Query(max_length=answers.limits.max_text, description="free text"), n: int = N):
        query = answers.text_query(text)
        return {"items": on_model(lambda rec: items_of(rec, *rec.similar_to_text(query, N=n)))}

    @app.post("/api/items", response_model=m["Added"])
    async def add_items(request: AddRequest = Body(), authorization: str | None = Header(None)):
        answers.require_admin(authorization)
        loaded, most = answers.slot.current, answers.limits.max_added_items
        added = len(loaded.rec.catalogue) - loaded.items
        if added + len(request.items) > most:
            raise HTTPException(409, f"this model holds {added} products added through the API and takes at most "
                                     f"{most} (max_added_items): reload the saved model, or add them to it and save")
        records = [item.model_dump(exclude_none=True) for item in request.items]
        added = add_records(loaded.rec, records)
        await answers.slot.share_added(records)  # other serving processes add them too
        return {"added": added, "items": len(loaded.rec.catalogue)}


def _service_routes(app, answers: _Answers) -> None:
    from fastapi import Header
    from fastapi.responses import HTMLResponse, JSONResponse

    slot, limits = answers.slot, answers.limits

    @app.get("/api/health")
    async def health() -> dict:
        return {"status": "ok", "generation": slot.current.generation}

    @app.get("/api/model")
    async def model_info() -> dict:
        loaded = slot.current
        rec, manifest = loaded.rec, loaded.manifest
        return {"version": __version__, "kind": manifest.get("kind"),
                "format_version": manifest.get("format_version"), "saved_at": manifest.get("saved_at"),
                "trained_on": rec.info.get("trained_on"), "users": len(rec.users),
                "items": len(rec.catalogue), "cold_items": int(rec.catalogue.cold.sum()),
                "likes": rec.info.get("likes"), "ratings": rec.info.get("ratings"),
                "item_item": rec.info.get("item_item"), "index": rec.retrieval_index.kind,
                "weights": rec.weights, "generation": loaded.generation, "loaded_at": loaded.loaded_at,
                "load_seconds": loaded.load_seconds, "last_reload_error": slot.last_reload_error,
                "pid": os.getpid(), "limits": limits.public()}

    @app.get("/api/examples")
    async def examples() -> dict:
        """Known users, products and search words to try on the serving model."""
        return answers.on_model(lambda rec: rec.examples())

    @app.post("/api/admin/reload")
    def reload(authorization: str | None = Header(None)):
        answers.require_admin(authorization)
        try:
            loaded = slot.reload()
        except ModelLoadError as exc:
            return JSONResponse({"detail": f"reload failed, still serving generation {exc.serving}: {exc}"},
                                status_code=503)
        return {"generation": loaded.generation, "loaded_at": loaded.loaded_at,
                "load_seconds": loaded.load_seconds}

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page():
        return resources.files("hybrid.serving").joinpath("web/index.html").read_text(encoding="utf-8")


def _field(error: dict) -> str:
    """Where a validation error is: ``n``, ``query.n``, ``user_ids.3``; ``body`` for the body as a whole."""
    loc = [str(p) for p in error.get("loc", ())]
    if error.get("type") == "json_invalid" or loc in (["body"], []):
        return "body"
    return ".".join(loc[1:] if loc[0] == "body" else loc)


class BodyLimit:
    """ASGI middleware: a request body over ``limit`` bytes gets a 413 (declared length or
    counted while reading), before any handler parses it."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.limit):
            return await self._refuse(send)
        received, started = 0, False

        async def limited():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _TooLarge
            return message

        async def tracked(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, tracked)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send):
        await _send_json(send, 413, f"request body over {self.limit} bytes")


class _TooLarge(Exception):
    pass


class HostCheck:
    """ASGI middleware, before any handler runs: a ``Host`` header outside ``allowed`` (None:
    any) is a 400, as a page on another site whose name resolves to this address would otherwise
    reach the API as this site; a request other than GET/HEAD whose ``Origin`` is another site
    (not this request's host, nor an allowed one) is a 403, as a form on another site the user
    has open would otherwise post here."""

    def __init__(self, app, allowed):
        self.app, self.allowed = app, None if allowed is None else {host.lower() for host in allowed}

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers", ()))
        host = host_name(headers.get(b"host", b"").decode("latin-1"))
        if self.allowed is not None and host not in self.allowed:
            return await _send_json(send, 400, f"host {host[:100]!r} is not served here; "
                                               "`hybrid serve --allowed-host NAME` answers to another name")
        origin = headers.get(b"origin")
        if origin is not None and scope.get("method") not in ("GET", "HEAD"):
            source = host_name(origin.decode("latin-1").partition("://")[2].partition("/")[0])
            if source != host and (self.allowed is None or source not in self.allowed):
                return await _send_json(send, 403, f"a request from another site ({source[:100]!r}) may not "
                                                   "post here")
        return await self.app(scope, receive, send)


def host_name(header: str) -> str:
    """The host of a ``Host`` header, lower-case, without its port or IPv6 brackets.

    Example:
        >>> host_name("[::1]:8000"), host_name("LocalHost:80"), host_name("example.org")
        ('::1', 'localhost', 'example.org')
    """
    header = header.strip().lower()
    if header.startswith("["):
        return header[1:].partition("]")[0]
    return header.rpartition(":")[0] if header.count(":") == 1 else header


async def _send_json(send, status: int, detail: str) -> None:
    """A whole JSON error answer ``{"detail": ...}``, from ASGI middleware."""
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


__all__ = ["create_app"]
