import random
import time

import pytest
from standardwebhooks import Webhook

from service.webhooks import (
    RETRY_DELAYS_SECONDS,
    TargetPolicy,
    WebhookTargetRefused,
    check_target,
    new_secret,
    retry_delay,
    signed_headers,
)


def test_signature_verifies_with_the_standard_webhooks_library():
    secret = new_secret()
    body = b'{"type":"job.succeeded","data":{"id":"j1"}}'
    timestamp = int(time.time())
    headers = signed_headers(secret, "msg_1", timestamp, body)
    assert headers["webhook-signature"].startswith("v1,")
    assert Webhook(secret).verify(body, headers) == {"type": "job.succeeded", "data": {"id": "j1"}}


def test_a_tampered_body_does_not_verify():
    secret = new_secret()
    timestamp = int(time.time())
    headers = signed_headers(secret, "msg_1", timestamp, b'{"a":1}')
    with pytest.raises(Exception, match="signature"):
        Webhook(secret).verify(b'{"a":2}', headers)


def test_retries_back_off_exponentially_with_jitter_over_hours():
    rng = random.Random(0)
    delays = [retry_delay(attempt, rng) for attempt in range(1, len(RETRY_DELAYS_SECONDS) + 2)]
    assert delays[-1] is None
    for delay, base in zip(delays, RETRY_DELAYS_SECONDS, strict=False):
        assert 0.8 * base <= delay <= 1.2 * base
    assert sum(RETRY_DELAYS_SECONDS) > 24 * 3600
    assert retry_delay(1, rng, scale=0.001) < 0.01


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://localhost/hook", "loopback"),
        ("http://10.1.2.3/hook", "private"),
        ("http://192.168.0.10/hook", "private"),
        ("http://169.254.169.254/latest/meta-data", "link-local"),
        ("http://[::1]/hook", "loopback"),
        ("http://[::ffff:10.0.0.1]/hook", "private"),
        ("http://0.0.0.0/hook", "reserved"),
        ("http://100.100.100.200/latest/meta-data", "private"),  # shared address space (100.64.0.0/10)
        ("http://[2002:a9fe:a9fe::1]/hook", r"link-local address \(169\.254\.169\.254 inside"),  # 6to4
        ("http://[2002:7f00:1::1]/hook", r"loopback address \(127\.0\.0\.1 inside"),
        ("http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook", "192.0.2.45 inside"),  # Teredo to TEST-NET-1
        ("http://[64:ff9b::a9fe:a9fe]/hook", "link-local"),  # NAT64
        ("http://[::ffff:127.0.0.1]/hook", "loopback"),
        ("http://198.18.0.1/hook", "private"),  # benchmarking range
        ("http://[fec0::1]/hook", "not globally routable"),  # IPv6 site-local
        ("ftp://example.com/hook", "http"),
    ],
)
def test_internal_targets_are_refused(url, reason):
    with pytest.raises(WebhookTargetRefused, match=reason):
        check_target(url, TargetPolicy())


def test_global_addresses_pass_pinned_to_the_checked_address():
    target = check_target("https://93.184.215.14:8443/hooks?x=1", TargetPolicy())
    assert (target.url, target.host, target.server_name) == (
        "https://93.184.215.14:8443/hooks?x=1",
        "93.184.215.14:8443",
        "93.184.215.14",
    )
    assert check_target("http://[2002:808:808::1]/h", TargetPolicy()).url == "http://[2002:808:808::1]/h"
    assert check_target("http://[64:ff9b::808:808]/h", TargetPolicy()).host == "[64:ff9b::808:808]"


def test_loopback_is_allowed_only_when_settings_say_so():
    check_target("http://127.0.0.1:8080/hook", TargetPolicy(allow_loopback=True))
    with pytest.raises(WebhookTargetRefused):
        check_target("http://10.0.0.1/hook", TargetPolicy(allow_loopback=True))
