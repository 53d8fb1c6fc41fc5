//! Typed helpers: values stored as JSON, with compare-and-swap where it matters.

use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{retry, Compare, Error, Op, Result, Revision, Store};

/// How long [`update_json`] and [`delete`] keep retrying when other writers win the race.
const CAS_GIVE_UP: Duration = Duration::from_secs(120);

fn decode<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        Error::Codec(format!(
            "decoding {key}: {e}; the record is damaged or from another version (rewrite or delete it)"
        ))
    })
}

fn encode<T: Serialize>(key: &str, value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| Error::Codec(format!("encoding {key}: {e}")))
}

/// The decoded value of `key` and its mod revision, if present.
pub fn get_json<T: DeserializeOwned>(s: &dyn Store, key: &str) -> Result<Option<(T, Revision)>> {
    match s.get(key)? {
        Some(kv) => Ok(Some((decode(key, &kv.value)?, kv.mod_revision))),
        None => Ok(None),
    }
}

/// Every key under `prefix` with its decoded value and mod revision, sorted by key.
pub fn list_json<T: DeserializeOwned>(
    s: &dyn Store,
    prefix: &str,
) -> Result<Vec<(String, T, Revision)>> {
    let (kvs, _) = s.list(prefix)?;
    kvs.into_iter()
        .map(|kv| {
            let v = decode(&kv.key, &kv.value)?;
            Ok((kv.key, v, kv.mod_revision))
        })
        .collect()
}

/// Creates `key`; fails with [`Error::Conflict`] if it already exists. Returns the new revision.
pub fn create_json<T: Serialize>(s: &dyn Store, key: &str, value: &T) -> Result<Revision> {
    let bytes = encode(key, value)?;
    let resp = s.txn(
        &[Compare::ModRevision(key.to_string(), 0)],
        &[Op::Put(key.to_string(), bytes)],
    )?;
    if resp.succeeded {
        Ok(resp.revision)
    } else {
        Err(Error::Conflict(format!("{key} already exists")))
    }
}

/// Creates or replaces `key`. Returns the new revision.
pub fn put_json<T: Serialize>(s: &dyn Store, key: &str, value: &T) -> Result<Revision> {
    let bytes = encode(key, value)?;
    Ok(s.txn(&[], &[Op::Put(key.to_string(), bytes)])?.revision)
}

/// Read-modify-write of `key` with compare-and-swap, retried (with jitter) while other writers
/// win. `f` gets the current value (`None` if absent) and returns the new one; `None` deletes
/// the key. `f` may run several times, so it must not have other effects. Returns what `f`
/// returned on the attempt that was written.
pub fn update_json<T, F>(s: &dyn Store, key: &str, mut f: F) -> Result<Option<T>>
where
    T: Serialize + DeserializeOwned,
    F: FnMut(Option<T>) -> Result<Option<T>>,
{
    let start = Instant::now();
    let mut attempt = 0;
    loop {
        let current = s.get(key)?;
        let rev = current.as_ref().map_or(0, |kv| kv.mod_revision);
        let old = match &current {
            Some(kv) => Some(decode::<T>(key, &kv.value)?),
            None => None,
        };
        let new = f(old)?;
        let op = match &new {
            Some(v) => Op::Put(key.to_string(), encode(key, v)?),
            None if current.is_none() => return Ok(None),
            None => Op::Delete(key.to_string()),
        };
        if s.txn(&[Compare::ModRevision(key.to_string(), rev)], &[op])?
            .succeeded
        {
            return Ok(new);
        }
        if start.elapsed() > CAS_GIVE_UP {
            return Err(Error::Conflict(format!(
                "updating {key}: other writers kept changing it for {}s ({attempt} attempts); try again",
                CAS_GIVE_UP.as_secs()
            )));
        }
        retry::backoff(attempt);
        attempt += 1;
    }
}

/// Deletes `key`; returns whether it existed.
pub fn delete(s: &dyn Store, key: &str) -> Result<bool> {
    let start = Instant::now();
    let mut attempt = 0;
    loop {
        let Some(kv) = s.get(key)? else {
            return Ok(false);
        };
        let resp = s.txn(
            &[Compare::ModRevision(key.to_string(), kv.mod_revision)],
            &[Op::Delete(key.to_string())],
        )?;
        if resp.succeeded {
            return Ok(true);
        }
        if start.elapsed() > CAS_GIVE_UP {
            return Err(Error::Conflict(format!(
                "deleting {key}: other writers kept changing it; try again"
            )));
        }
        retry::backoff(attempt);
        attempt += 1;
    }
}
