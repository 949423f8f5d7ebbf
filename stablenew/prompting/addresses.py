"""Where an LLM server is: its address as users paste it, and whether prompts sent there stay
at home. Apart from the client (httpx and the rest) so the Settings dialog can judge an address
as it is typed without loading them."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit


def normalise_url(url: str) -> str:
    """`localhost:1234/v1/` → `http://localhost:1234`: users paste the OpenAI base URL."""
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        url = "http://" + url
    if url.endswith("/v1"):
        url = url[: -len("/v1")]
    return url


def address_warning(url: str) -> str | None:
    """A plain warning when *url* is neither this machine nor the local network (prompts would
    leave home); None when it is. Names are judged without DNS: only `localhost`, single-label
    names and the home suffixes (.local, .lan, .home.arpa, .internal) count as local."""
    host = (urlsplit(normalise_url(url)).hostname or "").lower()
    if not host:
        return f"{url} is not a usable address."
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        local = (host == "localhost" or "." not in host
                 or host.endswith((".localhost", ".local", ".lan", ".home.arpa", ".internal")))
    else:
        # 100.64.0.0/10 is where Tailscale puts a home lab's machines.
        local = (ip.is_loopback or ip.is_private or ip.is_link_local
                 or (ip.version == 4 and ip in ipaddress.ip_network("100.64.0.0/10")))
    if local:
        return None
    return (f"{host} is not on this computer or your local network: your prompts and feedback "
            "will be sent there. Use a local LLM server if they should stay at home.")
