"""An OIDC provider for the ``idp_intent_start`` scenario: oidc-provider-mock on loopback.

Run as a child of the benchmark (``python bench/oidc_mock.py <port>``) so it dies with it.
The service fetches its discovery document once per worker and caches it, so the provider
sees next to no traffic while the clock runs.
"""

from __future__ import annotations

import sys
import warnings

import werkzeug.serving

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # authlib modules it still imports
    import oidc_provider_mock


def main(port: int) -> None:
    server = werkzeug.serving.make_server("127.0.0.1", port, oidc_provider_mock.app())
    server.serve_forever()


if __name__ == "__main__":
    main(int(sys.argv[1]))
