"""How commands print: JSON for scripts, short lines for people, one-line errors on stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

import typer
from pydantic import BaseModel


def emit_json(data: BaseModel | dict[str, Any] | list[Any]) -> None:
    if isinstance(data, BaseModel):
        typer.echo(data.model_dump_json(indent=2))
    else:
        typer.echo(json.dumps(data, indent=2, default=str))


def progress(message: str) -> None:
    """Progress of a long operation; goes to stderr so --json output stays clean."""
    print(message, file=sys.stderr, flush=True)


def fail(message: str, exit_code: int) -> None:
    print(f"error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(exit_code)
