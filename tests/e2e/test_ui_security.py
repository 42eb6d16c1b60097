"""The staff UI's security, over real HTTP (no browser needed): no page or
fragment answers without a session; a form post without the CSRF token is
refused and changes nothing; operators cannot reach admin screens; a login
always starts a new session id (no fixation) and logout ends it; logins are
throttled per account and per address; passwords never reach the logs or
the stores."""

from __future__ import annotations

import logging
import re

import httpx
import pytest

from tests.ui.support import (ADMIN_EMAIL, ADMIN_PASSWORD, OPERATOR_EMAIL, OPERATOR_PASSWORD, add_user,
                              pg_scalar, ui_stack, wait_for)
from ui.sessions import COOKIE

_TOKEN = re.compile(r'name="_csrf_token" value="([^"]+)"')


@pytest.fixture(scope="module")
def stack(redis_url, module_database_url):
    with ui_stack(redis_url, module_database_url, ui_login_failures_per_account=3,
                  ui_login_failures_per_address=8) as s:
        s.sku("SEC-1", 10, name="Guarded item")
        yield s


def browser(stack) -> httpx.Client:
    return httpx.Client(base_url=stack.base_url, timeout=30, follow_redirects=False)


def csrf(client: httpx.Client, path: str = "/ui/login") -> str:
    r = client.get(path)
    match = _TOKEN.search(r.text)
    assert match, (path, r.status_code)
    return match.group(1)


def sign_in(client: httpx.Client, email: str = ADMIN_EMAIL, password: str = ADMIN_PASSWORD) -> httpx.Response:
    token = csrf(client)
    return client.post("/ui/login", data={"email": email, "password": password, "_csrf_token": token})


def forget_failed_logins(stack) -> None:
    """Each test starts with no failed logins counted (they are per address: 127.0.0.1)."""
    for key in stack.redis.scan_iter(match=f"{stack.keys.prefix}:ui:fail:*"):
        stack.redis.delete(key)


def ui_routes(stack) -> list[tuple[str, str]]:
    """Every UI route (method, path with placeholder ids), but the login and static files."""
    from api.app import create_app

    app = create_app(stack.settings)
    out = []
    for route in app.routes:
        if not route.path.startswith("/ui") or route.path.startswith(("/ui/static", "/ui/login")):
            continue
        path = re.sub(r"\{(\w+):\w+\}", lambda m: {"event_id": "1-1", "action": "replay"}.get(m.group(1), "x1"),
                      route.path)
        for method in sorted(route.methods - {"OPTIONS", "HEAD"}):
            out.append((method, path))
    return out


def test_no_page_or_fragment_answers_without_a_session(stack):
    routes = ui_routes(stack)
    assert len(routes) > 25, routes
    with browser(stack) as client:
        token = csrf(client)  # a CSRF cookie, so posts reach the session guard
        for method, path in routes:
            if method == "GET":
                r = client.get(path)
                assert r.status_code == 303 and r.headers["location"].startswith("/ui/login"), (path, r.status_code)
                r = client.get(path, headers={"HX-Request": "true"})
                assert r.status_code == 401 and r.headers["hx-redirect"].startswith("/ui/login"), path
            else:
                r = client.request(method, path, headers={"x-csrftoken": token}, data={"_csrf_token": token})
                assert r.status_code in (303, 401), (method, path, r.status_code)
                assert "Guarded item" not in r.text
        # the home redirects to the login page too, with nothing in it
        assert client.get("/ui/inventory").headers["location"] == "/ui/login?next=%2Fui%2Finventory"


def test_a_form_post_without_the_csrf_token_is_refused_and_changes_nothing(stack):
    with browser(stack) as client:
        assert sign_in(client).status_code == 303
        on_hand = stack.api("GET", "/v1/inventory/SEC-1")["on_hand"]
        r = client.post("/ui/receive", data={"lines": "SEC-1 5", "reference": "CSRF-1"})
        assert r.status_code == 403
        r = client.post("/ui/orders", json={"idempotency_key": "csrf-test-1", "lines": [{"code": "SEC-1", "quantity": 1}]})
        assert r.status_code == 403
        # a token from another session's cookie does not pass either
        with browser(stack) as other:
            foreign = csrf(other)
        r = client.post("/ui/receive", data={"lines": "SEC-1 5", "reference": "CSRF-2", "_csrf_token": foreign})
        assert r.status_code == 403
        assert stack.api("GET", "/v1/inventory/SEC-1")["on_hand"] == on_hand
        # with its token the same post goes through
        token = csrf(client, "/ui/receive")
        r = client.post("/ui/receive", data={"lines": "SEC-1 5", "reference": "CSRF-3", "_csrf_token": token})
        assert r.status_code == 303, r.text
        assert stack.api("GET", "/v1/inventory/SEC-1")["on_hand"] == on_hand + 5


def test_an_operator_cannot_reach_admin_screens(stack):
    with browser(stack) as client:
        assert sign_in(client, OPERATOR_EMAIL, OPERATOR_PASSWORD).status_code == 303
        assert client.get("/ui/inventory").status_code == 200
        for path in ("/ui/admin/users", "/ui/admin/keys"):
            r = client.get(path)
            assert r.status_code == 403 and "for admins" in r.text, path
        token = csrf(client, "/ui/inventory")
        r = client.post("/ui/admin/users", data={"email": "sneaky@example.com", "password": "0123456789abc",
                                                 "role": "admin", "_csrf_token": token})
        assert r.status_code == 403
        r = client.post("/ui/admin/keys", data={"role": "admin", "_csrf_token": token})
        assert r.status_code == 403 and "onh_" not in r.text
        r = client.post("/ui/exceptions/dead-letters/1-1/replay", data={"_csrf_token": token})
        assert r.status_code == 403
        assert "Users" not in client.get("/ui/orders").text.split("<main", 1)[0]
    with browser(stack) as admin:
        sign_in(admin)
        assert admin.get("/ui/admin/users").status_code == 200
        assert "sneaky@example.com" not in admin.get("/ui/admin/users").text


def test_a_login_starts_a_new_session_and_logout_ends_it(stack):
    with browser(stack) as client:
        # an attacker plants a session id before the victim signs in
        client.cookies.set(COOKIE, "attacker-chosen-session-id", domain="127.0.0.1", path="/ui")
        r = sign_in(client)
        assert r.status_code == 303
        issued = r.cookies.get(COOKIE)
        assert issued and issued != "attacker-chosen-session-id"
        assert client.get("/ui/inventory").status_code == 200
        with browser(stack) as attacker:
            attacker.cookies.set(COOKIE, "attacker-chosen-session-id", domain="127.0.0.1", path="/ui")
            assert attacker.get("/ui/inventory").status_code == 303
        # signing in again replaces the session: the old id stops working
        again = sign_in(client).cookies.get(COOKIE)
        assert again and again != issued
        with browser(stack) as old:
            old.cookies.set(COOKIE, issued, domain="127.0.0.1", path="/ui")
            assert old.get("/ui/inventory").status_code == 303
        # logout ends the session in Redis, not only in this browser
        token = csrf(client, "/ui/inventory")
        assert client.post("/ui/logout", data={"_csrf_token": token}).status_code == 303
        with browser(stack) as replay:
            replay.cookies.set(COOKIE, again, domain="127.0.0.1", path="/ui")
            assert replay.get("/ui/inventory").status_code == 303
        assert client.get("/ui/inventory").status_code == 303


def test_logins_are_throttled_per_account_and_per_address(stack):
    forget_failed_logins(stack)
    add_user(stack.settings, "throttled@example.com", "the right password", "operator")
    with browser(stack) as client:
        for _ in range(3):
            assert sign_in(client, "throttled@example.com", "a wrong password").status_code == 401
        # the account is locked for the window, even with the right password
        r = sign_in(client, "throttled@example.com", "the right password")
        assert r.status_code == 429 and "Too many failed sign-ins" in r.text
        # other accounts from this address still sign in (until the address's own limit)
        assert sign_in(client, OPERATOR_EMAIL, OPERATOR_PASSWORD).status_code == 303
        for i in range(5):
            sign_in(client, f"nobody{i}@example.com", "guessing")
        assert sign_in(client, ADMIN_EMAIL, ADMIN_PASSWORD).status_code == 429


def test_a_disabled_user_is_signed_out_and_an_idle_session_ends(redis_url, database_url):
    with ui_stack(redis_url, database_url, workers=False, ui_session_idle_s=1) as stack:
        add_user(stack.settings, "leaver@example.com", "leaver password 1", "operator")
        with browser(stack) as leaver, browser(stack) as admin:
            assert sign_in(leaver, "leaver@example.com", "leaver password 1").status_code == 303
            assert leaver.get("/ui/orders/new").status_code == 200
            sign_in(admin)
            from ui.users import user_id

            uid = user_id(stack.settings.merchant, "leaver@example.com")
            token = csrf(admin, "/ui/admin/users")
            assert admin.post(f"/ui/admin/users/{uid}/disable", data={"_csrf_token": token}).status_code == 303
            assert leaver.get("/ui/orders/new").status_code == 303
            assert sign_in(leaver, "leaver@example.com", "leaver password 1").status_code == 401
            # an idle session (1 s here) ends by itself (asking would keep it alive: watch Redis)
            wait_for(lambda: not list(stack.redis.scan_iter(match=f"{stack.keys.prefix}:ui:session:*")),
                     timeout_s=10, message="the idle session to end")
            assert admin.get("/ui/orders/new").status_code == 303


def test_passwords_never_reach_the_logs_or_the_stores(stack, caplog):
    forget_failed_logins(stack)
    secret = "an-unmistakable-password-XYZ"
    caplog.set_level(logging.DEBUG)
    add_user(stack.settings, "careful@example.com", secret, "operator")
    with browser(stack) as client:
        assert sign_in(client, "careful@example.com", secret + "-wrong").status_code == 401
        assert sign_in(client, "careful@example.com", secret).status_code == 303
        token = csrf(client, "/ui/orders/new")
        client.post("/ui/login", data={"email": "careful@example.com", "password": secret, "_csrf_token": "bad"})
    stack.drained()
    logged = caplog.text + "\n".join(str(r.__dict__) for r in caplog.records)
    assert "UI login" in caplog.text  # the logins were logged...
    assert secret not in logged       # ...without their password
    for key in stack.redis.scan_iter(match=f"{stack.keys.prefix}:*", count=5000):
        if stack.redis.type(key) == b"hash":
            assert secret.encode() not in b"".join(v for v in stack.redis.hgetall(key).values()), key
    url = stack.settings.database_url
    assert pg_scalar(url, "SELECT count(*) FROM users WHERE email = 'careful@example.com' "
                          "AND password_hash LIKE '$argon2id$%'") == 1
    assert pg_scalar(url, "SELECT count(*) FROM users WHERE doc::text LIKE :s", s=f"%{secret}%") == 0
    assert token


def test_a_staff_user_sees_only_their_own_merchant(stack):
    """Staff users belong to one merchant: one of merchant B signs in naming
    B, sees B's orders only, and another merchant's order is a 404; a
    session cookie edited to name another merchant is no session there;
    B's user cannot sign in as the home merchant's."""
    from sqlalchemy import create_engine

    from engine.keys import Keys
    from persistence import merchants
    from persistence.rebuild import Rebuilder
    from tests.servers import new_merchant

    forget_failed_logins(stack)
    b = new_merchant()
    engine = create_engine(stack.settings.database_url)
    try:
        with engine.begin() as conn:
            merchants.create(conn, stack.redis, merchants.MerchantRecord(b, f"Merchant {b}", {}),
                             home=stack.settings.merchant)
        Rebuilder(stack.redis, engine, Keys(b)).run()
    finally:
        engine.dispose()
    add_user(stack.settings, "staff@b.example", "b's own long passphrase", "operator", merchant=b)
    home_order = stack.http.post("/v1/orders", json={"channel": "dtc", "po_number": "HOME-PO-1",
                                                     "lines": [{"sku": "SEC-1", "quantity": 1}]})
    assert home_order.status_code == 201, home_order.text
    home_id = home_order.json()["id"]
    with browser(stack) as client:
        # without naming B, B's user is not the home merchant's
        r = sign_in(client, "staff@b.example", "b's own long passphrase")
        assert r.status_code == 401
        forget_failed_logins(stack)
        token = csrf(client)
        # asked for once there is more than one (the app reads the registry at most every few seconds)
        wait_for(lambda: 'name="merchant"' in client.get("/ui/login").text, 15, "a merchant field")
        r = client.post("/ui/login", data={"email": "staff@b.example", "password": "b's own long passphrase",
                                           "merchant": b, "_csrf_token": token})
        assert r.status_code == 303, r.text
        cookie = client.cookies.get(COOKIE)
        assert cookie.endswith(f".{b}")
        assert client.get(f"/ui/orders/{home_id}").status_code == 404
        listing = client.get("/ui/orders", params={"q": "HOME-PO-1"})
        assert listing.status_code == 200 and home_id not in listing.text
        assert client.get("/ui/orders").status_code == 200
        # the same session id said to be the home merchant's is no session
        client.cookies.set(COOKIE, cookie.rpartition(".")[0] + "." + stack.settings.merchant, path="/ui")
        assert client.get("/ui/orders").status_code == 303
        client.cookies.set(COOKIE, cookie.rpartition(".")[0] + ".nosuch-merchant", path="/ui")
        assert client.get("/ui/orders").status_code == 303
    with browser(stack) as client:  # the home merchant's admin still sees its order
        assert sign_in(client).status_code == 303
        assert client.get(f"/ui/orders/{home_id}").status_code == 200
    for key in list(stack.redis.scan_iter(match=Keys(b).pattern(), count=1000)):
        stack.redis.delete(key)
