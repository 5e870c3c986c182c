"""Token buckets limiting widget messages and connections per connection and per IP address."""

from api.rate_limit import BucketMap, TokenBucket


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_a_burst_then_refuses_until_it_refills():
    bucket = TokenBucket(capacity=3, rate=1.0, now=0.0)
    assert [bucket.take(0.0) for _ in range(4)] == [True, True, True, False]
    assert not bucket.take(0.5), "half a token is not enough"
    assert bucket.take(1.0)
    assert not bucket.take(1.0)


def test_a_bucket_never_holds_more_than_its_capacity():
    bucket = TokenBucket(capacity=2, rate=10.0, now=0.0)
    assert bucket.take(0.0) and bucket.take(0.0)
    assert [bucket.take(1000.0) for _ in range(3)] == [True, True, False]


def test_each_address_has_its_own_bucket():
    clock = Clock()
    limits = BucketMap(capacity=2, per_minute=60, clock=clock)
    assert limits.take("198.51.100.1") and limits.take("198.51.100.1")
    assert not limits.take("198.51.100.1")
    assert limits.take("198.51.100.2"), "another address is not affected"
    clock.now = 1.0
    assert limits.take("198.51.100.1"), "one token per second at 60 per minute"


def test_the_map_forgets_the_least_recently_used_address_when_full():
    limits = BucketMap(capacity=1, per_minute=1, max_keys=2, clock=Clock())
    assert limits.take("a") and limits.take("b")
    assert not limits.take("a")  # a is now the most recently used
    assert limits.take("c")
    assert len(limits) == 2
    assert not limits.take("a"), "a was kept"
    assert limits.take("b"), "b was forgotten and starts with a fresh bucket"


def test_a_connection_bucket_takes_the_maps_capacity_and_rate():
    clock = Clock()
    limits = BucketMap(capacity=2, per_minute=30, clock=clock)
    bucket = limits.bucket()
    assert bucket.take(0.0) and bucket.take(0.0) and not bucket.take(0.0)
    assert bucket.take(2.0), "30 per minute: one every two seconds"
