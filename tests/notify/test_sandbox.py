"""The Twilio sandbox speaks Twilio's wire format (raw HTTP, no twilio client)."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
from twilio.base.exceptions import TwilioRestException
from twilio_helpers import ACCOUNT, SMS_FROM, TOKEN, Sandbox

from ivr.notify.twilio_messenger import make_twilio_client

URL = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
FORM = {"To": "+31612345678", "From": SMS_FROM, "Body": "hi"}


def test_create_returns_twilio_message_json(sandbox: Sandbox) -> None:
    """POST Messages.json gives 201 with Twilio's fields; fetch returns the same SID."""
    resp = httpx.post(sandbox.url + URL, data=FORM, auth=(ACCOUNT, TOKEN))
    assert resp.status_code == 201
    msg = resp.json()
    assert msg["sid"].startswith("SM") and len(msg["sid"]) == 34
    assert (msg["status"], msg["to"], msg["direction"]) == ("queued", FORM["To"], "outbound-api")
    fetched = httpx.get(sandbox.url + URL.replace(".json", f"/{msg['sid']}.json"),
                        auth=(ACCOUNT, TOKEN))
    assert fetched.json()["sid"] == msg["sid"]
    assert any(msg["sid"] in line for line in sandbox.lines)  # logged


@pytest.mark.parametrize(("form", "code"), [
    ({**FORM, "To": "+15005550001"}, 21211), ({**FORM, "To": "+15005550004"}, 21610),
    ({**FORM, "To": "+15005550003"}, 21408), ({**FORM, "To": "not-a-number"}, 21211),
    ({**FORM, "From": "+15005550001"}, 21212), ({"From": SMS_FROM, "Body": "x"}, 21604),
    ({"To": FORM["To"], "From": SMS_FROM}, 21602),
])
def test_errors_use_twilio_error_body(sandbox: Sandbox, form: dict[str, str], code: int) -> None:
    """Failures answer 400 with Twilio's {code, message, more_info, status} body."""
    resp = httpx.post(sandbox.url + URL, data=form, auth=(ACCOUNT, TOKEN))
    body = resp.json()
    assert resp.status_code == 400 == body["status"] and body["code"] == code
    assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"


def test_wrong_credentials_are_401(sandbox: Sandbox) -> None:
    """Basic auth must match the account SID and auth token (Twilio error 20003)."""
    resp = httpx.post(sandbox.url + URL, data=FORM, auth=(ACCOUNT, "wrong"))
    assert resp.status_code == 401 and resp.json()["code"] == 20003


def test_faults_are_consumed_in_order(sandbox: Sandbox) -> None:
    """'Next N requests fail' faults apply N times, then requests succeed again."""
    sandbox.fault(status=503, count=2)
    codes = [httpx.post(sandbox.url + URL, data=FORM, auth=(ACCOUNT, TOKEN)).status_code
             for _ in range(3)]
    assert codes == [503, 503, 201]


def test_idempotency_token_deduplicates(sandbox: Sandbox) -> None:
    """A repeated request with the same idempotency token returns the first message."""
    headers = {"I-Twilio-Idempotency-Token": "row-1"}
    first = httpx.post(sandbox.url + URL, data=FORM, auth=(ACCOUNT, TOKEN), headers=headers)
    again = httpx.post(sandbox.url + URL, data=FORM, auth=(ACCOUNT, TOKEN), headers=headers)
    assert first.json()["sid"] == again.json()["sid"]
    assert len(sandbox.messages()) == 1


def test_official_client_raises_twilio_exception(sandbox: Sandbox) -> None:
    """The real twilio client parses the sandbox's errors into TwilioRestException."""
    client = make_twilio_client(ACCOUNT, TOKEN, base_url=sandbox.url)
    with pytest.raises(TwilioRestException) as info:
        client.messages.create(to="+15005550004", from_=SMS_FROM, body="x")
    assert (info.value.status, info.value.code) == (400, 21610)


def test_cli_command_serves(tmp_path: object) -> None:
    """`ivr twilio-sandbox --port P` starts a server that accepts a message."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "ivr", "twilio-sandbox", "--port", str(port),
                             "--auth-token", TOKEN, "--account-sid", ACCOUNT],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                resp = httpx.post(f"http://127.0.0.1:{port}{URL}", data=FORM,
                                  auth=(ACCOUNT, TOKEN))
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        assert resp.status_code == 201
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    assert resp.json()["sid"] in out
