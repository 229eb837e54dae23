"""Async client for Peloton's unofficial API (``api.onepeloton.com``), one instance per account.

Usage::

    async with httpx.AsyncClient() as http:          # one per app, shared by all accounts
        client = PelotonClient(http=http, tokens=TokenSet.supplied(refresh_token=...),
                               on_tokens=save_tokens)
        me = await client.me()
        new = await client.list_new_workouts(me.id, known_ids=stored_ids, since=None)
        bundles = [await client.fetch_bundle(w.id) for w in new.complete]

Every request sends ``Authorization: Bearer``, ``Peloton-Platform: web`` (needed for GPS data)
and a stable User-Agent, waits for a slot of a shared semaphore (``config.concurrency``) and,
when given a ``gate``, for a slot of the request budget (:mod:`service.peloton.budget`), renews
the token once on a 401, and retries transient failures with jittered backoff. Throttling is
reported to the gate, which pauses every request from this address. Errors are typed: see
:mod:`service.peloton.errors`.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Container, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx
import structlog
from pydantic import BaseModel, ValidationError

from service.errors import InvalidInput, validation_problems
from service.peloton.auth import Authenticator, Clock, LoginClientFactory, utcnow
from service.peloton.budget import RequestGate
from service.peloton.errors import (
    PelotonForbidden,
    PelotonNotFound,
    RateLimited,
    TransientError,
    Unauthorized,
    UnexpectedResponse,
    api_error,
)
from service.peloton.models import (
    Credentials,
    Me,
    NewWorkouts,
    PelotonConfig,
    TokenSet,
    UserSettings,
    Workout,
    WorkoutListPage,
)
from service.peloton.retry import Sleep, retrying
from service.peloton.session import AuthSession, Bearer, OnMethod, OnTokens

log = structlog.get_logger(__name__)

M = TypeVar("M", bound=BaseModel)

#: Peloton caps list pages at 100; a bigger limit is silently cut, which breaks paging.
MAX_PAGE_SIZE = 100
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_JOINS = "ride,ride.instructor"

KnownIds = Container[str] | Callable[[str], bool | Awaitable[bool]]


def _check_id(value: str, what: str) -> str:
    # Ids go into URL paths: refuse anything that could change the path.
    if not isinstance(value, str) or not _ID.match(value):
        raise InvalidInput(f"invalid Peloton {what} id: {value!r}")
    return value


class PelotonClient:
    """Peloton API calls for one account. See the module docstring.

    ``http`` is the app's shared client; if none is given the client makes its own and closes
    it in :meth:`aclose` (or ``async with``). ``tokens`` and/or ``credentials`` say how to
    authenticate; ``on_tokens`` is awaited with every new :class:`TokenSet`, ``on_method`` with
    the login method when another than the account's worked. ``semaphore`` may
    be shared between clients to bound concurrency across accounts; ``gate`` (the request
    budget) is asked before every API request. ``clock`` and ``sleep`` are injectable for tests.
    """

    def __init__(
        self,
        *,
        http: httpx.AsyncClient | None = None,
        config: PelotonConfig | None = None,
        credentials: Credentials | None = None,
        tokens: TokenSet | None = None,
        on_tokens: OnTokens | None = None,
        on_method: OnMethod | None = None,
        semaphore: asyncio.Semaphore | None = None,
        clock: Clock = utcnow,
        sleep: Sleep = asyncio.sleep,
        login_client_factory: LoginClientFactory | None = None,
        gate: RequestGate | None = None,
    ) -> None:
        self._config = config or PelotonConfig()
        self._gate = gate
        self._owns_http = http is None
        # An unopened httpx client holds no connections, so an invalid account leaks nothing.
        self._http = http if http is not None else httpx.AsyncClient()
        self._clock = clock
        self._sleep = sleep
        self._semaphore = semaphore or asyncio.Semaphore(self._config.concurrency)
        authenticator = Authenticator(
            self._http, self._config, clock=clock, login_client_factory=login_client_factory
        )
        self.session = AuthSession(
            authenticator,
            self._config,
            credentials=credentials,
            tokens=tokens,
            on_tokens=on_tokens,
            on_method=on_method,
            clock=clock,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client if this client made it (never an injected one)."""
        if self._owns_http:
            await self._http.aclose()

    @property
    def tokens(self) -> TokenSet | None:
        return self.session.tokens

    async def login(self) -> TokenSet:
        """Log in once with the account's username, password and method (to link it)."""
        return await self.session.login()

    # --- endpoints ----------------------------------------------------------------------------

    async def me(self) -> Me:
        """``GET /api/me``: the account's user (``.id`` is the user id)."""
        what = "GET /api/me"
        me = self._parse(Me, await self._get_object("/api/me", None, what), what)
        if not me.id:
            raise UnexpectedResponse(f"{what}: Peloton's answer has no user id")
        return me

    async def user_settings(self, user_id: str) -> UserSettings:
        """``GET /api/user/{id}/settings`` (``distance_unit`` and friends)."""
        path = f"/api/user/{_check_id(user_id, 'user')}/settings"
        what = f"GET {path}"
        return self._parse(UserSettings, await self._get_object(path, None, what), what)

    async def list_workouts(self, user_id: str, page: int = 0, limit: int = 20) -> WorkoutListPage:
        """One page of the user's workouts, newest first. ``page`` is 0-based; keep ``limit``
        the same for every page of one listing (changing it shifts the window)."""
        if not 1 <= limit <= MAX_PAGE_SIZE:
            raise InvalidInput(f"Peloton page size must be 1..{MAX_PAGE_SIZE}, got {limit}")
        if page < 0:
            raise InvalidInput(f"Peloton page must be 0 or more, got {page}")
        path = f"/api/user/{_check_id(user_id, 'user')}/workouts"
        what = f"GET {path} page {page}"
        params: dict[str, str | int] = {
            "joins": _JOINS,
            "limit": limit,
            "page": page,
            "sort_by": "-created",
        }
        return self._parse(WorkoutListPage, await self._get_object(path, params, what), what)

    async def workout(self, workout_id: str) -> Workout:
        """``GET /api/workout/{id}`` joined with its ride and instructor."""
        path = f"/api/workout/{_check_id(workout_id, 'workout')}"
        what = f"GET {path}"
        data = await self._get_object(path, {"joins": _JOINS}, what, retry_blank=True)
        return self._parse(Workout, data, what)

    async def performance_graph(
        self, workout_id: str, every_n: int | None = None
    ) -> dict[str, Any]:
        """``GET /api/workout/{id}/performance_graph``: one sample every ``every_n`` seconds."""
        every_n = self._every_n(every_n)
        path = f"/api/workout/{_check_id(workout_id, 'workout')}/performance_graph"
        return await self._get_object(path, {"every_n": every_n}, f"GET {path}")

    async def ride_details(self, ride_id: str | None) -> dict[str, Any] | None:
        """``GET /api/ride/{id}/details`` (class plan); None for no class (empty/all-zero id)."""
        if not ride_id or not ride_id.strip("0"):
            return None
        path = f"/api/ride/{_check_id(ride_id, 'ride')}/details"
        return await self._get_object(path, None, f"GET {path}")

    async def fetch_bundle(self, workout_id: str, every_n: int | None = None) -> dict[str, Any]:
        """The converter's input: ``{"workout", "performance_graph", "ride_details"}``, each the
        JSON as Peloton sent it; ``ride_details`` is None without a class, or if it is gone or
        refused (a 403 of Peloton's own: the class plan is optional)."""
        graph = asyncio.create_task(self.performance_graph(workout_id, self._every_n(every_n)))
        try:
            workout = await self.workout(workout_id)
            try:
                details = await self.ride_details(workout.ride_id)
            except PelotonNotFound:
                details = None
            except PelotonForbidden as exc:
                if exc.cloudflare_code is not None:  # the edge refused: nothing known of the class
                    raise
                details = None  # Peloton refused this class plan
            return {
                "workout": workout.raw,
                "performance_graph": await graph,
                "ride_details": details,
            }
        finally:
            if not graph.done():
                graph.cancel()
            await asyncio.wait([graph])
            if not graph.cancelled():
                graph.exception()  # mark it retrieved: the first error has already propagated

    # --- listing ------------------------------------------------------------------------------

    async def iter_workouts(
        self, user_id: str, *, page_size: int = MAX_PAGE_SIZE, max_pages: int | None = None
    ) -> AsyncIterator[Workout]:
        """Every workout, newest first, page by page with a constant ``limit``.

        Workouts repeated across pages (new ones arriving while paging shift the window) are
        yielded once.
        """
        seen: set[str] = set()
        page_no = 0
        while max_pages is None or page_no < max_pages:
            page = await self.list_workouts(user_id, page_no, page_size)
            for workout in page.data:
                if workout.id and workout.id not in seen:
                    seen.add(workout.id)
                    yield workout
            if not page.has_next(page_no, page_size):
                return
            page_no += 1

    async def list_new_workouts(
        self,
        user_id: str,
        *,
        known_ids: KnownIds = (),
        since: datetime | None = None,
        page_size: int = 20,
        max_pages: int = 100,
    ) -> NewWorkouts:
        """Workouts newer than what is known, newest first.

        Stops at the first workout whose id is in ``known_ids`` (a container, or a sync or
        async predicate) or that was created before ``since`` (aware datetime). Workouts not
        yet ``COMPLETE`` are reported apart in ``in_progress``.
        """
        if since is not None and since.tzinfo is None:
            raise InvalidInput("since must be a timezone-aware datetime")
        complete: list[Workout] = []
        in_progress: list[Workout] = []
        seen: set[str] = set()
        page_no = 0
        stopped_by = "end"
        while True:
            page = await self.list_workouts(user_id, page_no, page_size)
            for workout in page.data:
                if not workout.id or workout.id in seen:
                    continue
                seen.add(workout.id)
                if await _is_known(known_ids, workout.id):
                    stopped_by = "known"
                    break
                created = workout.created_at or workout.start_time
                if since is not None and created is not None and created < since:
                    stopped_by = "since"
                    break
                (complete if workout.is_complete else in_progress).append(workout)
            if stopped_by != "end" or not page.has_next(page_no, page_size):
                break
            if page_no + 1 >= max_pages:
                stopped_by = "max_pages"
                break
            page_no += 1
        return NewWorkouts(complete, in_progress, page_no + 1, stopped_by)

    # --- requests -----------------------------------------------------------------------------

    def _every_n(self, every_n: int | None) -> int:
        every_n = self._config.every_n if every_n is None else every_n
        if not 1 <= every_n <= 60:
            raise InvalidInput(f"every_n must be 1..60 seconds, got {every_n}")
        return every_n

    @staticmethod
    def _parse(model: type[M], data: dict[str, Any], what: str) -> M:
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            where, message = validation_problems(exc)[0]
            raise UnexpectedResponse(
                f"{what}: Peloton sent an unexpected {where or 'body'} ({message})"
            ) from None

    async def _get_object(
        self,
        path: str,
        params: Mapping[str, str | int] | None,
        what: str,
        *,
        retry_blank: bool = False,
    ) -> dict[str, Any]:
        """GET a JSON object, retrying transient failures. ``retry_blank``: an object without
        an ``id`` is a transient blank answer (seen for workouts)."""
        retrier = retrying(
            what,
            attempts=self._config.max_attempts,
            base_s=self._config.backoff_base_s,
            max_s=self._config.backoff_max_s,
            sleep=self._sleep,
        )
        return await retrier(self._get_once, path, params, what, retry_blank)

    async def _get_once(
        self,
        path: str,
        params: Mapping[str, str | int] | None,
        what: str,
        retry_blank: bool,
    ) -> dict[str, Any]:
        async with self._semaphore:
            bearer = await self.session.bearer()
            response = await self._send(path, params, bearer, what)
            if response.status_code == 401:
                log.info("peloton.request.unauthorized", what=what)
                bearer = await self.session.renew_after_401(bearer)
                response = await self._send(path, params, bearer, what)
                if response.status_code == 401:
                    raise Unauthorized(f"Peloton refused a renewed access token for {what}")
        error = api_error(response, what, self._clock())
        if error is not None:
            if isinstance(error, RateLimited):
                log.warning(
                    "peloton.request.rate_limited", what=what, retry_after=error.retry_after
                )
                if self._gate is not None:
                    await self._gate.throttled(error.retry_after, what)
            raise error
        return self._json_object(response, what, retry_blank)

    async def _send(
        self, path: str, params: Mapping[str, str | int] | None, bearer: Bearer, what: str
    ) -> httpx.Response:
        if self._gate is not None:
            await self._gate.acquire(what)
        headers = {
            "Authorization": f"Bearer {bearer.token}",
            "Peloton-Platform": "web",
            "User-Agent": self._config.user_agent,
            "Accept": "application/json",
        }
        try:
            return await self._http.get(
                f"{self._config.api_url}{path}",
                params=params,
                headers=headers,
                timeout=self._config.timeout_s,
            )
        except httpx.TimeoutException as exc:
            raise TransientError(f"{what} timed out") from exc
        except (httpx.TransportError, httpx.DecodingError) as exc:
            raise TransientError(f"{what} failed: {type(exc).__name__}") from exc

    @staticmethod
    def _json_object(response: httpx.Response, what: str, retry_blank: bool) -> dict[str, Any]:
        if not response.content.strip():
            raise TransientError(f"{what}: Peloton sent an empty answer")
        try:
            data = json.loads(response.content)  # bytes: a UTF-8 BOM is tolerated
        except ValueError:
            raise TransientError(f"{what}: Peloton sent malformed JSON") from None
        if not isinstance(data, dict):
            raise TransientError(f"{what}: Peloton sent JSON that is not an object")
        if retry_blank and not data.get("id"):
            raise TransientError(f"{what}: Peloton sent a blank workout")
        return data


async def _is_known(known_ids: KnownIds, workout_id: str) -> bool:
    if callable(known_ids):
        answer = known_ids(workout_id)
        return bool(await answer) if isinstance(answer, Awaitable) else bool(answer)
    return workout_id in known_ids
