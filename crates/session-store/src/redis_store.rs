//! `RedisStore` (feature `redis`): sessions in Redis, through redis-rs.

use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::stored::{decode_saved, encode_saved};
use crate::{Epoch, Error, Lease, OwnerId, Saved, SessionKey, SessionStore, StoredSession};

/// Grants the lease when none is live. KEYS: lease, epoch counter, state; ARGV: owner, ttl ms.
/// The new epoch is above the counter and above the epoch of the saved state, so that a
/// counter lost (a failover to a replica that had not seen it) never hands out an epoch whose
/// writes the state would take for a newer owner's.
const ACQUIRE: &str = r"
local held = redis.call('GET', KEYS[1])
if held then
  return {0, held, redis.call('PTTL', KEYS[1])}
end
local epoch = redis.call('INCR', KEYS[2])
local saved = tonumber(redis.call('HGET', KEYS[3], 'epoch') or '0') or 0
if epoch <= saved then
  epoch = saved + 1
  redis.call('SET', KEYS[2], epoch)
end
redis.call('SET', KEYS[1], epoch .. ':' .. ARGV[1], 'NX', 'PX', ARGV[2])
return {1, tostring(epoch), 0}
";

/// Extends the lease if it is the caller's. KEYS: lease; ARGV: token, ttl ms.
const RENEW: &str = r"
local held = redis.call('GET', KEYS[1])
if held ~= ARGV[1] then
  return {0, held, 0}
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, false, 0}
";

/// Writes the state if the lease is the caller's and the state is not newer.
/// KEYS: lease, state; ARGV: token, epoch, data.
const SAVE: &str = r"
local held = redis.call('GET', KEYS[1])
if held ~= ARGV[1] then
  return {0, held, 0}
end
local saved = tonumber(redis.call('HGET', KEYS[2], 'epoch') or '0') or 0
if saved > tonumber(ARGV[2]) then
  return {0, held, 0}
end
redis.call('HSET', KEYS[2], 'epoch', ARGV[2], 'data', ARGV[3])
return {1, false, 0}
";

/// Deletes the lease if it is the caller's. KEYS: lease; ARGV: token.
const RELEASE: &str = r"
local held = redis.call('GET', KEYS[1])
if held ~= ARGV[1] then
  return {0, held, 0}
end
redis.call('DEL', KEYS[1])
return {1, false, 0}
";

/// What every script answers: granted or done (1) or refused (0), the live lease's token
/// (`epoch:owner`) when refused, and the live lease's remaining milliseconds (acquire).
type Reply = (i64, Option<String>, i64);

/// Sessions in Redis: the fleet's store.
///
/// Per session key `K`, under a prefix (default `gemini-live:`) and a hash tag so that one
/// session's keys share a cluster slot:
/// - `{K}:lease`: the live lease, `epoch:owner`, with a TTL (`SET … NX PX ttl`): Redis
///   expires it on its own clock;
/// - `{K}:epoch`: the fencing counter (`INCR` on every grant; never expires);
/// - `{K}:state`: a hash, the saved session (`data`, the format [`load`](SessionStore::load)
///   reads) and the epoch that wrote it (`epoch`): the state is one key.
///
/// Each operation is one Lua script, which Redis runs atomically: `acquire` checks that no
/// lease is live, increments the epoch and sets the lease; `renew`, `save` and `release` check
/// that the lease is still the caller's (`epoch:owner`) before they touch anything, and `save`
/// refuses to replace a state written by a higher epoch. No Redlock: one Redis deployment is
/// the authority.
///
/// It works against a single primary, or a primary with replicas as Redis documents them:
/// replication is asynchronous, so a failover can lose the last writes acknowledged by the old
/// primary, a lease among them, and a second owner can then be granted the session while the
/// first still believes it holds it. The store limits what that costs (a grant's epoch is
/// above the saved state's, and a save never replaces a newer epoch's state), and the session
/// layer's renewal deadline bounds how long the first owner goes on; for a guarantee across
/// failovers, run Redis with persistence and no automatic failover, or accept the window.
/// Every command is bounded by a time limit (default 2 s): a Redis that does not answer is
/// [`Error::Timeout`], which is transient.
#[derive(Clone)]
pub struct RedisStore {
    connection: ConnectionManager,
    prefix: String,
    timeout: Duration,
    acquire: Script,
    renew: Script,
    save: Script,
    release: Script,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection's address may carry a password: not shown.
        f.debug_struct("RedisStore")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The default time limit of one command.
pub const REDIS_TIMEOUT: Duration = Duration::from_secs(2);

impl RedisStore {
    /// Connects to the Redis at `url` (`redis://[user:password@]host:port[/db]`), with the
    /// default prefix and time limit. The connection reconnects on its own after a failure.
    ///
    /// # Errors
    /// [`Error::Redis`] for a bad URL or a refused connection; [`Error::Timeout`].
    pub async fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(url, REDIS_TIMEOUT).await
    }

    /// As [`connect`](Self::connect), each command (and the connection itself) bounded by
    /// `timeout`.
    ///
    /// # Errors
    /// As [`connect`](Self::connect).
    pub async fn connect_with(url: &str, timeout: Duration) -> Result<Self, Error> {
        let client = redis::Client::open(url).map_err(Error::Redis)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1);
        let connection =
            tokio::time::timeout(timeout, ConnectionManager::new_with_config(client, config))
                .await
                .map_err(|_| Error::Timeout { limit: timeout })?
                .map_err(Error::Redis)?;
        Ok(Self {
            connection,
            prefix: "gemini-live:".to_owned(),
            timeout,
            acquire: Script::new(ACQUIRE),
            renew: Script::new(RENEW),
            save: Script::new(SAVE),
            release: Script::new(RELEASE),
        })
    }

    /// The same store with its keys under `prefix` (for several applications on one Redis).
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// The Redis key of `key`'s `part` (`lease`, `epoch` or `state`).
    pub fn redis_key(&self, key: &SessionKey, part: &str) -> String {
        format!("{}{{{key}}}:{part}", self.prefix)
    }

    async fn run(&self, invocation: redis::ScriptInvocation<'_>) -> Result<Reply, Error> {
        let mut connection = self.connection.clone();
        tokio::time::timeout(self.timeout, invocation.invoke_async(&mut connection))
            .await
            .map_err(|_| Error::Timeout {
                limit: self.timeout,
            })?
            .map_err(Error::Redis)
    }

    /// The error for a refused renew, save or release, given the live lease's token.
    fn fenced(lease: &Lease, held: Option<&str>) -> Error {
        Error::Fenced {
            key: lease.key().clone(),
            epoch: lease.epoch(),
            current: held.and_then(|held| parse_token(held).map(|(epoch, _)| epoch)),
        }
    }
}

fn token(lease: &Lease) -> String {
    format!("{}:{}", lease.epoch().0, lease.owner())
}

fn parse_token(token: &str) -> Option<(Epoch, &str)> {
    let (epoch, owner) = token.split_once(':')?;
    Some((Epoch(epoch.parse().ok()?), owner))
}

#[async_trait]
impl SessionStore for RedisStore {
    async fn acquire(
        &self,
        key: &SessionKey,
        owner: &OwnerId,
        ttl: Duration,
    ) -> Result<Lease, Error> {
        let ttl_ms = crate::lease::check_ttl(ttl)?;
        let mut invocation = self.acquire.prepare_invoke();
        invocation
            .key(self.redis_key(key, "lease"))
            .key(self.redis_key(key, "epoch"))
            .key(self.redis_key(key, "state"))
            .arg(owner.as_str())
            .arg(ttl_ms);
        let (granted, value, pttl) = self.run(invocation).await?;
        let corrupt = |what: &str| Error::Corrupt {
            key: key.clone(),
            reason: format!("{what}: {value:?}"),
        };
        let value_str = value.as_deref().unwrap_or_default();
        if granted == 1 {
            let epoch = value_str
                .parse()
                .map_err(|_| corrupt("the epoch counter"))?;
            return Ok(Lease::new(key.clone(), owner.clone(), Epoch(epoch), ttl));
        }
        let (epoch, holder) = parse_token(value_str).ok_or_else(|| corrupt("the lease"))?;
        let holder = OwnerId::new(holder).map_err(|_| corrupt("the lease's owner"))?;
        Err(Error::Held {
            key: key.clone(),
            owner: holder,
            epoch,
            expires_in: u64::try_from(pttl).ok().map(Duration::from_millis),
        })
    }

    async fn renew(&self, lease: &Lease) -> Result<(), Error> {
        let ttl_ms = crate::lease::check_ttl(lease.ttl())?;
        let mut invocation = self.renew.prepare_invoke();
        invocation
            .key(self.redis_key(lease.key(), "lease"))
            .arg(token(lease))
            .arg(ttl_ms);
        match self.run(invocation).await? {
            (1, _, _) => Ok(()),
            (_, held, _) => Err(Self::fenced(lease, held.as_deref())),
        }
    }

    async fn load(&self, key: &SessionKey) -> Result<Option<Saved>, Error> {
        let mut connection = self.connection.clone();
        let mut command = redis::cmd("HGET");
        command.arg(self.redis_key(key, "state")).arg("data");
        let query = command.query_async::<Option<Vec<u8>>>(&mut connection);
        let data = tokio::time::timeout(self.timeout, query)
            .await
            .map_err(|_| Error::Timeout {
                limit: self.timeout,
            })?
            .map_err(Error::Redis)?;
        data.map(|bytes| decode_saved(key, &bytes)).transpose()
    }

    async fn save(&self, lease: &Lease, session: &StoredSession) -> Result<(), Error> {
        let data = encode_saved(lease.epoch(), session)?;
        let mut invocation = self.save.prepare_invoke();
        invocation
            .key(self.redis_key(lease.key(), "lease"))
            .key(self.redis_key(lease.key(), "state"))
            .arg(token(lease))
            .arg(lease.epoch().0)
            .arg(data);
        match self.run(invocation).await? {
            (1, _, _) => Ok(()),
            (_, held, _) => Err(Self::fenced(lease, held.as_deref())),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), Error> {
        let mut invocation = self.release.prepare_invoke();
        invocation
            .key(self.redis_key(lease.key(), "lease"))
            .arg(token(lease));
        match self.run(invocation).await? {
            (1, _, _) => Ok(()),
            (_, held, _) => Err(Self::fenced(lease, held.as_deref())),
        }
    }
}
