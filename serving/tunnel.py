"""An ngrok tunnel to a local Ollama (or the UI), for a GPU box such as Colab, via pyngrok.

Ollama bound to 127.0.0.1 answers 403 to any other Host header, so the tunnel rewrites it to
localhost:PORT. The tunnel is public: basic auth is on unless the caller opts out. The ngrok
authtoken comes from NGROK_AUTHTOKEN only and is never printed, stored or put in a message.
"""

import os
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit

from serving.errors import BackendUnavailable, InvalidInput
from serving.lazy import require

OLLAMA_PORT = 11434
TOKEN_ENV = "NGROK_AUTHTOKEN"


@dataclass(frozen=True)
class Tunnel:
    public_url: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def host_line(self) -> str:
        """The .env line that points Polaris at this tunnel, credentials included."""
        url = self.public_url
        if self.username and self.password:
            parts = urlsplit(url)
            userinfo = f"{quote(self.username, safe='')}:{quote(self.password, safe='')}"
            url = urlunsplit(parts._replace(netloc=f"{userinfo}@{parts.netloc}"))
        return f"POLARIS_OLLAMA_HOST={url}"


def _pyngrok():
    require("pyngrok", package="pyngrok", extra="tunnel", purpose="`polaris serve tunnel`")
    from pyngrok import conf, exception, ngrok

    return ngrok, conf, exception


def _config(conf, token: str):
    # config_version 2: the agent's /api/tunnels takes host_header and basic_auth directly.
    return conf.PyngrokConfig(auth_token=token, config_version="2")


def open_tunnel(
    port: int = OLLAMA_PORT,
    *,
    insecure: bool = False,
    username: str = "polaris",
    password: str | None = None,
) -> Tunnel:
    """Open an HTTPS tunnel to localhost:PORT; credentials are generated unless given."""
    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        raise InvalidInput(
            f"{TOKEN_ENV} is not set: copy your authtoken from the ngrok dashboard and run "
            f"`export {TOKEN_ENV}=...` (it is read from the environment only, never stored)"
        )
    if not 1 <= port <= 65535:
        raise InvalidInput(f"port {port} is out of range: use 1 to 65535")
    ngrok, conf, exception = _pyngrok()
    options: dict = {"host_header": f"localhost:{port}"}
    if not insecure:
        if ":" in username or not username:
            raise InvalidInput("the tunnel username must be non-empty and have no ':'")
        password = password or secrets.token_urlsafe(18)
        if not 8 <= len(password) <= 128:
            raise InvalidInput("the tunnel password must be 8 to 128 characters (ngrok's rule)")
        options["basic_auth"] = [f"{username}:{password}"]
    try:
        tunnel = ngrok.connect(str(port), "http", pyngrok_config=_config(conf, token), **options)
    except exception.PyngrokError as exc:
        message = str(exc).replace(token, "***")
        if password:
            message = message.replace(password, "***")
        raise BackendUnavailable(
            f"ngrok could not open a tunnel to localhost:{port}: {message}; check "
            f"{TOKEN_ENV} and that this machine can reach ngrok"
        ) from None
    if insecure:
        return Tunnel(tunnel.public_url, port)
    return Tunnel(tunnel.public_url, port, username, password)


def hold(tunnel: Tunnel, minutes: float = 0) -> None:
    """Keep the tunnel open until Ctrl-C (or for `minutes`), then close it."""
    ngrok, conf, _ = _pyngrok()
    deadline = time.monotonic() + minutes * 60 if minutes > 0 else None
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(1.0 if deadline is None else max(0.0, min(1.0, deadline - time.monotonic())))
    except KeyboardInterrupt:
        pass
    finally:
        config = _config(conf, os.environ.get(TOKEN_ENV, ""))
        ngrok.disconnect(tunnel.public_url, pyngrok_config=config)
        ngrok.kill(pyngrok_config=config)
