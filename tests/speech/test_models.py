"""`ivr models fetch` download code against a local HTTP server serving zips built here."""

from __future__ import annotations

import hashlib
import http.server
import io
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from click.testing import CliRunner

from ivr.cli.speech_cmd import models
from ivr.speech.models import ModelFetchError, ModelSpec, fetch_model


def model_zip(top: str = "vosk-model-small-xx-0.1", extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{top}/am/final.mdl", b"\x00" * 5000)
        zf.writestr(f"{top}/conf/model.conf", "--beam=10.0\n")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


class Files(http.server.BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[bytes, int | None]]] = {}

    def do_GET(self) -> None:
        if self.path not in self.routes:
            self.send_error(404)
            return
        body, length = self.routes[self.path]
        self.send_response(200)
        self.send_header("Content-Length", str(length if length is not None else len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    good = model_zip()
    corrupt = bytearray(good)
    corrupt[60:80] = b"\xff" * 20  # inside the first member's compressed data
    Files.routes = {
        "/good.zip": (good, None),
        "/corrupt.zip": (bytes(corrupt), None),
        "/notzip.zip": (b"<html>captive portal</html>", None),
        "/slip.zip": (model_zip(extra={"../evil.txt": b"x"}), None),
        "/two.zip": (model_zip(extra={"other/file": b"x"}), None),
        "/short.zip": (good[:100], len(good)),
    }
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Files)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_fetch_verifies_and_unpacks(server: str, tmp_path: Path) -> None:
    """A good zip with the right sha256 and size unpacks to its model directory."""
    data = Files.routes["/good.zip"][0]
    spec = ModelSpec("x", f"{server}/good.zip", len(data), hashlib.sha256(data).hexdigest())
    path = fetch_model(spec, tmp_path)
    assert path == tmp_path / "vosk-model-small-xx-0.1"
    assert (path / "am" / "final.mdl").stat().st_size == 5000
    assert [p.name for p in tmp_path.iterdir()] == ["vosk-model-small-xx-0.1"]  # no leftovers


@pytest.mark.parametrize(
    "route,spec_kw,message",
    [
        ("/good.zip", {"sha256": "0" * 64}, "sha256 mismatch"),
        ("/good.zip", {"size": 12}, "size mismatch"),
        ("/corrupt.zip", {}, "zip"),
        ("/notzip.zip", {}, "not a zip"),
        ("/slip.zip", {}, "unsafe path"),
        ("/two.zip", {}, "one top-level"),
        ("/short.zip", {}, "download.*failed|truncated"),
        ("/missing.zip", {}, "HTTP 404"),
    ],
)
def test_fetch_rejects_bad_downloads(
    server: str, tmp_path: Path, route: str, spec_kw: dict[str, object], message: str
) -> None:
    """Checksum, size, corruption, zip-slip, layout and HTTP errors are refused cleanly."""
    spec = ModelSpec("x", f"{server}{route}", **spec_kw)  # type: ignore[arg-type]
    with pytest.raises(ModelFetchError, match=message):
        fetch_model(spec, tmp_path)
    assert not (tmp_path / "vosk-model-small-xx-0.1").exists()
    assert not (tmp_path.parent / "evil.txt").exists()


def test_cli_fetch_prints_setting(server: str, tmp_path: Path) -> None:
    """`ivr models fetch vosk-small-nl --url ... --dest ...` prints the IVR_VOSK_MODEL_NL line."""
    res = CliRunner().invoke(
        models, ["fetch", "vosk-small-nl", "--url", f"{server}/good.zip", "--dest", str(tmp_path)]
    )
    assert res.exit_code == 0, res.output
    assert f"IVR_VOSK_MODEL_NL={tmp_path / 'vosk-model-small-xx-0.1'}" in res.output
    res = CliRunner().invoke(
        models, ["fetch", "vosk-small-en", "--url", f"{server}/nope", "--dest", str(tmp_path)]
    )
    assert res.exit_code == 1 and "HTTP 404" in res.output
