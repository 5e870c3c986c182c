"""Client addresses never reach a log line."""

import logging

from api.logs import RedactAddresses


def record(message, *args):
    return logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, message, args, None)


def test_ipv4_and_ipv6_client_addresses_are_redacted():
    for message, args in [("%s - \"WebSocket /ws/agent\" [accepted]", ("203.0.113.9:51234",)),
                          ("client %s connected", ("[2001:db8::7]:443",)),
                          ("from 198.51.100.23", ())]:
        r = record(message, *args)
        RedactAddresses().filter(r)
        line = r.getMessage()
        assert "203.0.113" not in line and "2001:db8" not in line and "198.51.100" not in line
        assert "[address]" in line


def test_lines_without_addresses_are_untouched():
    r = record("projection runner caught up to %d", 42)
    RedactAddresses().filter(r)
    assert r.getMessage() == "projection runner caught up to 42"


def test_the_servers_own_loopback_address_stays_readable():
    r = record("Uvicorn running on http://%s", "127.0.0.1:8000")
    RedactAddresses().filter(r)
    assert r.getMessage() == "Uvicorn running on http://127.0.0.1:8000"
