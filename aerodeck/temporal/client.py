"""Connect to Temporal with the pydantic data converter, TLS and API key from settings."""

from __future__ import annotations

import asyncio

from temporalio.client import Client, TLSConfig
from temporalio.contrib.pydantic import pydantic_data_converter

from aerodeck.errors import BadInput, Unreachable
from aerodeck.settings import Settings


def _tls_config(settings: Settings) -> TLSConfig | bool:
    if not settings.temporal_tls_enabled:
        return False

    def read(path_name: str) -> bytes | None:
        path = getattr(settings, path_name)
        if path is None:
            return None
        try:
            return path.read_bytes()
        except OSError as exc:
            raise BadInput(f"cannot read AERODECK_{path_name.upper()} file {path}: {exc.strerror}") from exc

    return TLSConfig(
        server_root_ca_cert=read("temporal_tls_ca"),
        client_cert=read("temporal_tls_cert"),
        client_private_key=read("temporal_tls_key"),
    )


def _describe(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, TimeoutError):
        return "timed out"
    if "ConnectionRefused" in text or "Connection refused" in text:
        return "connection refused"
    return text.splitlines()[0][:160] if text else type(exc).__name__


async def connect(settings: Settings) -> Client:
    """A connected client, or Unreachable with what to do; gives up after the connect timeout."""
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    tls = _tls_config(settings)
    try:
        return await asyncio.wait_for(
            Client.connect(
                settings.temporal_address,
                namespace=settings.temporal_namespace,
                data_converter=pydantic_data_converter,
                tls=True if api_key and tls is False else tls,
                api_key=api_key,
            ),
            timeout=settings.temporal_connect_timeout_s,
        )
    except (TimeoutError, RuntimeError, OSError) as exc:
        detail = _describe(exc)
        raise Unreachable(
            f"cannot reach Temporal at {settings.temporal_address} ({detail}); start the embedded stack "
            "with `aerodeck up` or set AERODECK_TEMPORAL_ADDRESS to your Temporal frontend"
        ) from exc
