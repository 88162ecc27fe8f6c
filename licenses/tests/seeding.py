"""Many live leases at once, written straight into a seat ledger's store (the
tests of bounded answers and bench/status_scale.py): tens of thousands of
acquires through the API would take minutes.

Each seeded lease looks like one acquire made: on Redis the records and the
paging indexes are written by a script that runs the ledgers' own prelude
(so the index format has one home), on the database by one bulk insert.
Session ids and fingerprints have one length whatever their number, and every
time has a fractional part, so that answers differ in size only by their
counts' digits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import timedelta

from licenses.ledger.base import SeatLedger
from licenses.ledger.redis import SCRIPT_DIR, RedisSeatLedger

# One script call seeds at most this many (Redis runs nothing else meanwhile).
REDIS_BATCH = 5_000

SEED_LUA = """
-- ARGV[3] first number, ARGV[4] how many, ARGV[5] ttl ms, ARGV[6] tenant id,
-- ARGV[7] session id prefix, ARGV[8..] user ids, taken in turn ('' for none).
local first, count, ttl, tid = tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]
local prefix = ARGV[7]
local users = {}
for i = 8, #ARGV do
  users[#users + 1] = ARGV[i]
end
local created = now - now % 1000 + 123 -- never a whole second
for n = first, first + count - 1 do
  local sid = prefix .. string.format('%09d', n)
  local uid = users[n % #users + 1]
  local record = {fp = string.format('machine-%09d', n), tid = tid, ci = '{}', c = created, uid = cjson.null}
  if uid ~= '' then
    record.uid = uid
  end
  redis.call('ZADD', live, created + ttl, sid)
  redis.call('HSET', leases, sid, cjson.encode(record))
  index_add(sid, record)
end
keep()
return count
"""


def seed_live_leases(
    ledger: SeatLedger,
    *,
    license_id: uuid.UUID,
    tenant_id: uuid.UUID,
    count: int,
    user_ids: Sequence[str | None] = (None,),
    ttl: int = 3600,
) -> None:
    """`count` live leases of `license_id`, held by `user_ids` in turn. On the
    database ledger the caller holds the tenant's scope (or operator scope)."""
    # Session ids are unique across licenses on the database ledger.
    prefix = f"seeded-{license_id.hex[:8]}-"
    if isinstance(ledger, RedisSeatLedger):
        script = ledger.client.register_script((SCRIPT_DIR / "prelude.lua").read_text() + SEED_LUA)
        for first in range(0, count, REDIS_BATCH):
            script(
                keys=ledger.keys(license_id),
                args=[
                    ledger.retention_seconds * 1000,
                    ledger.expired_cap,
                    first,
                    min(REDIS_BATCH, count - first),
                    ttl * 1000,
                    str(tenant_id),
                    prefix,
                    *(user_id or "" for user_id in user_ids),
                ],
            )
        return
    from licenses.models import Lease as LeaseRow
    from licenses.models import License

    license = License.objects.get(pk=license_id)
    created = license.created_at.replace(microsecond=123_456)
    LeaseRow.objects.bulk_create(
        [
            LeaseRow(
                tenant_id=tenant_id,
                license_id=license_id,
                session_id=f"{prefix}{n:09d}",
                fingerprint=f"machine-{n:09d}",
                user_id=user_ids[n % len(user_ids)],
                client_info={},
                created_at=created,
                expires_at=created + timedelta(seconds=ttl),
            )
            for n in range(count)
        ],
        batch_size=2_000,
    )
