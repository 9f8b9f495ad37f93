"""The chaos run's gateway process: `python -m payrisk.chaos.gateway_main PORT` with settings from the
environment (as a `payrisk up` uvicorn worker gets them), joining the run's Ray. A process so that the
`kill_gateway` fault can SIGKILL it mid-batch, exactly as a crashed worker dies."""

from __future__ import annotations

import sys

import uvicorn

from gateway.app import create_app
from payrisk.httpserver import uvicorn_options
from settings import load_settings
from settings.logging import configure_logging


def main() -> None:
    settings = load_settings(dotenv=None)
    configure_logging("warning")
    uvicorn.run(create_app(settings), host="127.0.0.1", port=int(sys.argv[1]), **uvicorn_options(settings))


if __name__ == "__main__":
    main()
