"""bench.send_models runs each way it compares, with the guard of the real send path."""

import os

from bench import send_models


def test_each_way_sends_and_reports_a_rate(fast_delivery, capsys):
    environment = dict(os.environ)
    try:
        send_models.main(["--requests", "40", "--rounds", "1", "--in-flight", "4"])
    finally:
        # main() sets what a bench process needs; the next tests get theirs back.
        os.environ.clear()
        os.environ.update(environment)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("4 in flight, 40 POSTs")
    rates = {line[:9].strip(): line[9:].split()[0] for line in lines[1:]}
    assert sorted(rates) == ["aiohttp", "httpx", "send loop"]
    assert all(float(rate.replace(",", "")) > 0 for rate in rates.values())
