"""The Lua scripts: every session operation is one script, so one round trip.

Each script touches the keys of ONE hash slot only: either a session's data and
lock keys (which share the hash tag ``{<key>}``) or one user's index. That keeps
them valid on Redis Cluster, where a script may not cross slots.

Conventions:

* Times inside scripts come from the server's ``TIME``; a client passes only
  durations (milliseconds), so clock skew between the application and Redis,
  or between cluster nodes, never matters.
* A session is a hash: ``v`` the value, and for a logged-in session ``u`` its
  user id, ``ix`` (data-node clock, ms) until when its index entry is
  guaranteed to be kept, and ``is`` the index entry's score when it was
  written, a stamp that lets removals skip entries someone re-added since.
* Every script that frees a session lock publishes on the lock key's channel
  (an empty message), which wakes that lock's waiters in other processes.
* Reply codes: ``1`` done, ``0`` refused (``replace_only`` on a missing key, or
  a key that is not the user's), ``-1`` the lock token is gone or different
  (nothing written), ``-2`` the user index must be refreshed first (nothing
  written, the lock still held).
* The scripts every locked request runs (ACQUIRE, SAVE) take and return as
  little as they can: the client's cost of a command grows with every argument
  it encodes and every reply element it parses.
"""

from __future__ import annotations

__all__ = [
    "ACQUIRE",
    "DELETE",
    "DELETE_IF_OWNED",
    "EXTEND",
    "INDEX_ADD",
    "INDEX_MEMBERS",
    "INDEX_REMOVE",
    "LOAD",
    "LOAD_IF_OWNED",
    "RELEASE",
    "SAVE",
    "TOUCH",
    "VOID",
]

_HELPERS = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function int(n)
  return string.format('%d', n)
end
"""

# Freeing a lock also wakes its waiters in other processes (see `_wakeup`): they
# subscribe to a channel named after the lock key.
_RELEASE_HELPER = """
local function release(lock)
  redis.call('DEL', lock)
  redis.call('PUBLISH', lock, '')
end
"""

#: KEYS: data. Returns nil, or {value, pttl}.
LOAD = """
local v = redis.call('HGET', KEYS[1], 'v')
if not v then return false end
return {v, redis.call('PTTL', KEYS[1])}
"""

#: KEYS: data, lock, void (this token's). ARGV: token, lease_ms.
#: Returns the lock's pttl (an integer) when someone else holds the lock, -3 when
#: the token was voided (see VOID: its holder gave up), else takes it and returns
#: {} (no session), {value, pttl} (no user) or
#: {value, pttl, user, ms the index entry is still guaranteed|-1}.
#: A replayed call by the same holder (same token) counts as taking it.
ACQUIRE = (
    _HELPERS
    + """
if redis.call('EXISTS', KEYS[3]) == 1 then return -3 end
if not redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  if redis.call('GET', KEYS[2]) ~= ARGV[1] then return redis.call('PTTL', KEYS[2]) end
  redis.call('PEXPIRE', KEYS[2], ARGV[2])
end
local h = redis.call('HMGET', KEYS[1], 'v', 'u', 'ix')
if not h[1] then return {} end
if not h[2] then return {h[1], redis.call('PTTL', KEYS[1])} end
local left = -1
if h[3] then left = tonumber(h[3]) - now_ms() end
return {h[1], redis.call('PTTL', KEYS[1]), h[2], left}
"""
)

#: KEYS: data [, lock]. ARGV: token, value, ttl_ms, replace_only (1/0), and only
#: for a session with a user: user, until_ms (0: no index entry written for this
#: save), stamp. With a lock key the save is fenced and releases the lock.
#: Returns -1 lock lost, 0 replace_only refused (lock released), -2 index
#: needed, 1 written, or {old user, old stamp} (written) when the owner changed.
SAVE = (
    _HELPERS
    + _RELEASE_HELPER
    + """
local data, lock = KEYS[1], KEYS[2]
if lock and redis.call('GET', lock) ~= ARGV[1] then return -1 end
local old = redis.call('HMGET', data, 'v', 'u', 'ix', 'is')
if not old[1] and ARGV[4] == '1' then
  if lock then release(lock) end
  return 0
end
local ttl, has_user, user = tonumber(ARGV[3]), #ARGV > 4, ARGV[5]
local ix, stamp = false, false
if has_user then
  local now = now_ms()
  if old[2] == user and old[3] then ix, stamp = tonumber(old[3]), old[4] end
  local until_ms = tonumber(ARGV[6])
  if until_ms > 0 then
    -- The client has just written the index entry; its score is the new stamp.
    if not ix or now + until_ms > ix then ix = now + until_ms end
    stamp = ARGV[7]
  end
  -- Never let the data outlive its index entry: logout-everywhere must find it.
  if not ix or ix < now + ttl then return -2 end
end
-- Overwrite in place (cheaper for Redis than deleting and recreating the key).
if has_user then
  redis.call('HSET', data, 'v', ARGV[2], 'u', user, 'ix', int(ix), 'is', stamp)
else
  if old[2] or old[3] or old[4] then redis.call('HDEL', data, 'u', 'ix', 'is') end
  redis.call('HSET', data, 'v', ARGV[2])
end
redis.call('PEXPIRE', data, ttl)
if lock then release(lock) end
if old[2] and (not has_user or old[2] ~= user) and old[4] then return {old[2], old[4]} end
return 1
"""
)

#: KEYS: data [, lock]. ARGV: token. With a lock key the delete is fenced and releases.
#: Returns {-1} lock lost, else {1, user|nil, stamp|nil}.
DELETE = (
    _RELEASE_HELPER
    + """
local data, lock = KEYS[1], KEYS[2]
if lock and redis.call('GET', lock) ~= ARGV[1] then return {-1} end
local h = redis.call('HMGET', data, 'u', 'is')
redis.call('DEL', data)
if lock then release(lock) end
return {1, h[1], h[2]}
"""
)

#: KEYS: data. ARGV: ttl_ms, until_ms (0: none), stamp.
#: Returns {0} missing, {-2, user} index needed (nothing changed), {1} done.
TOUCH = (
    _HELPERS
    + """
local h = redis.call('HMGET', KEYS[1], 'v', 'u', 'ix')
if not h[1] then return {0} end
local ttl = tonumber(ARGV[1])
if h[2] then
  local now = now_ms()
  local ix = tonumber(h[3] or '0')
  local until_ms = tonumber(ARGV[2])
  if until_ms > 0 then
    if now + until_ms > ix then ix = now + until_ms end
    redis.call('HSET', KEYS[1], 'ix', int(ix), 'is', ARGV[3])
  end
  if ix < now + ttl then return {-2, h[2]} end
end
redis.call('PEXPIRE', KEYS[1], ttl)
return {1}
"""
)

#: KEYS: lock. ARGV: token. Compare-and-delete (and wake the waiters): 1 released,
#: 0 not ours (any more).
RELEASE = (
    _RELEASE_HELPER
    + """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  release(KEYS[1])
  return 1
end
return 0
"""
)

#: KEYS: lock, void (this token's). ARGV: token, keep_ms. For an acquire whose reply
#: never came:
#: Redis may run it later still (a lost reply; a stalled server runs what it had
#: queued once it resumes, in any order across connections). Frees the lock if the
#: token holds it, and voids the token for keep_ms, so that the acquire, if it runs
#: after this, takes nothing. Returns 1 freed, 0 not held.
VOID = (
    _RELEASE_HELPER
    + """
local held = redis.call('GET', KEYS[1]) == ARGV[1]
if held then release(KEYS[1]) end
redis.call('SET', KEYS[2], '1', 'PX', ARGV[2])
if held then return 1 end
return 0
"""
)

#: KEYS: lock. ARGV: token, lease_ms. 1 extended, 0 not ours (any more).
EXTEND = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

#: KEYS: index. ARGV: member, until_ms.
#: Drops entries whose guarantee ran out, adds or refreshes `member` with a score
#: of now + until_ms (always strictly above its previous score: the score is also
#: the entry's stamp), keeps the index alive as long as its longest entry.
#: Returns the new score.
INDEX_ADD = (
    _HELPERS
    + """
local now = now_ms()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local score = now + tonumber(ARGV[2])
local old = redis.call('ZSCORE', KEYS[1], ARGV[1])
if old and tonumber(old) >= score then score = tonumber(old) + 1 end
redis.call('ZADD', KEYS[1], int(score), ARGV[1])
local top = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIREAT', KEYS[1], top[2])
return score
"""
)

#: KEYS: index. ARGV: member, stamp. Removes the entry only if nobody re-added it
#: since the stamp was taken. Returns 1 removed, 0 kept.
INDEX_REMOVE = """
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) == tonumber(ARGV[2]) then
  return redis.call('ZREM', KEYS[1], ARGV[1])
end
return 0
"""

#: KEYS: index. Drops entries whose guarantee ran out; returns the members left.
INDEX_MEMBERS = (
    _HELPERS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now_ms())
return redis.call('ZRANGE', KEYS[1], 0, -1)
"""
)

#: KEYS: data. ARGV: user. Returns nil unless the session is live and owned by
#: `user`, else {value, pttl}.
LOAD_IF_OWNED = """
local h = redis.call('HMGET', KEYS[1], 'v', 'u')
if not h[1] or h[2] ~= ARGV[1] then return false end
return {h[1], redis.call('PTTL', KEYS[1])}
"""

#: KEYS: data. ARGV: user. Deletes the session if `user` owns it.
#: Returns {1, stamp|nil} deleted, {0} not the user's (or gone).
DELETE_IF_OWNED = """
local h = redis.call('HMGET', KEYS[1], 'u', 'is')
if h[1] ~= ARGV[1] then return {0} end
redis.call('DEL', KEYS[1])
return {1, h[2]}
"""
