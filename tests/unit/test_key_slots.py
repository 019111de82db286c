"""Keys that one Lua script or MULTI writes together hash to one Redis Cluster slot."""

from redis.cluster import key_slot

from connectors.registry import DEFAULT
from core import keys


def slot(key: str) -> int:
    return key_slot(key.encode())


def test_the_last_error_hash_sits_on_its_streams_slot():
    # The worker acks an entry and drops its last error in one MULTI (Bus.dead_letter).
    streams = [keys.ingest_stream(c.name) for c in DEFAULT] + [keys.TICKET_EVENTS, keys.outbound_stream("email")]
    for stream in streams:
        for group in (keys.GROUP_NORMALIZER, keys.GROUP_ROUTER, keys.GROUP_SENDER):
            assert slot(keys.last_error_key(stream, group)) == slot(stream), stream


def test_the_imap_commit_scripts_keys_sit_on_ingest_emails_slot():
    # connectors/email/imap/mailbox.py: lease, checkpoint, attempts and the XADD in one script.
    target = slot(keys.ingest_stream("email"))
    for account, folder in ((1, "INBOX"), (42, "Support/中文"), (7, "{odd}")):
        assert {slot(keys.imap_lease_key(account, folder)), slot(keys.imap_checkpoint_key(account, folder)),
                slot(keys.imap_attempts_key(account, folder))} == {target}


def test_streams_keep_their_names_and_spread_over_slots():
    # Untagged stream names: each channel's stream may live on another master.
    assert keys.ingest_stream("email") == "ingest.email"
    assert keys.dead_stream("ingest.email") == "dead.ingest.email"
    assert len({slot(keys.ingest_stream(c.name)) for c in DEFAULT}) == len(list(DEFAULT))
