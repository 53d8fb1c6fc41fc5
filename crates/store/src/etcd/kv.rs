//! [`EtcdStore`]: the [`Store`] operations as etcd range, txn and compact requests.

use etcd_client::{Compare as EtcdCompare, CompareOp, DeleteOptions, GetOptions, Txn, TxnOp};

use super::watch::EtcdWatch;
use super::worker::Worker;
use super::{is_compacted, is_future, kv_from_etcd, to_etcd, to_weft, EtcdUrl};
use crate::{Compare, Error, KeyValue, Op, Result, Revision, Store, TxnResponse, Watch};

/// Largest answer to a `list` (etcd itself caps a request at 1.5 MiB, not an answer).
pub(super) const MAX_LIST_BYTES: usize = 256 << 20;

/// A [`Store`] in an etcd cluster (see the module's documentation for revisions and threads).
pub struct EtcdStore {
    worker: Worker,
}

impl EtcdStore {
    /// Opens `etcd://HOST:PORT[,HOST:PORT...][?netns=NAME]`. The connection is made by the
    /// first request, so this succeeds while etcd is down; requests then fail in bounded time.
    pub fn open(url: &str) -> Result<EtcdStore> {
        let url = EtcdUrl::parse(url)?;
        Ok(EtcdStore {
            worker: Worker::start(&url)?,
        })
    }

    /// The store's URL.
    pub fn url(&self) -> &str {
        &self.worker.url
    }

    /// etcd's current revision.
    fn etcd_revision(&self) -> Result<i64> {
        self.worker
            .call("reading the revision", |mut c| async move {
                let r = c
                    .get("/", Some(GetOptions::new().with_count_only()))
                    .await?;
                Ok(header_rev(r.header()))
            })
    }
}

fn header_rev(h: Option<&etcd_client::ResponseHeader>) -> i64 {
    h.map_or(0, |h| h.revision())
}

fn compare(c: &Compare) -> EtcdCompare {
    match c {
        Compare::ModRevision(k, r) => {
            let etcd = if *r == 0 { 0 } else { to_etcd(*r) };
            EtcdCompare::mod_revision(k.as_str(), CompareOp::Equal, etcd)
        }
        Compare::Version(k, v) => EtcdCompare::version(k.as_str(), CompareOp::Equal, *v),
        // etcd fails a value compare on an absent key, as the contract wants.
        Compare::Value(k, v) => EtcdCompare::value(k.as_str(), CompareOp::Equal, v.clone()),
    }
}

fn op(o: &Op) -> TxnOp {
    match o {
        Op::Put(k, v) => TxnOp::put(k.as_str(), v.clone(), None),
        Op::Delete(k) => TxnOp::delete(k.as_str(), None),
        Op::DeletePrefix(p) => TxnOp::delete(p.as_str(), Some(DeleteOptions::new().with_prefix())),
    }
}

impl Store for EtcdStore {
    fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let k = key.to_string();
        let kv = self
            .worker
            .call(&format!("reading {key}"), |mut c| async move {
                let mut r = c.get(k, None).await?;
                Ok(r.take_kvs().into_iter().next())
            })?;
        kv.as_ref().map(kv_from_etcd).transpose()
    }

    fn list(&self, prefix: &str) -> Result<(Vec<KeyValue>, Revision)> {
        let p = prefix.to_string();
        let (kvs, rev) = self
            .worker
            .call(&format!("listing {prefix}"), |c| async move {
                // Sorted by key, ascending: etcd's order of a range. A whole cluster's state may
                // outgrow gRPC's default 4 MiB answer.
                let mut kv = c.kv_client().max_decoding_message_size(MAX_LIST_BYTES);
                let mut r = kv.get(p, Some(GetOptions::new().with_prefix())).await?;
                let rev = header_rev(r.header());
                Ok((r.take_kvs(), rev))
            })?;
        let kvs = kvs.iter().map(kv_from_etcd).collect::<Result<Vec<_>>>()?;
        Ok((kvs, to_weft(rev)))
    }

    fn txn(&self, compares: &[Compare], ops: &[Op]) -> Result<TxnResponse> {
        let txn = Txn::new()
            .when(compares.iter().map(compare).collect::<Vec<_>>())
            .and_then(ops.iter().map(op).collect::<Vec<_>>());
        let (succeeded, rev) = self
            .worker
            .call("running a transaction", |mut c| async move {
                let r = c.txn(txn).await?;
                Ok((r.succeeded(), header_rev(r.header())))
            })?;
        Ok(TxnResponse {
            succeeded,
            revision: to_weft(rev),
        })
    }

    fn revision(&self) -> Result<Revision> {
        self.etcd_revision().map(to_weft)
    }

    fn watch(&self, prefix: &str, from: Revision) -> Result<Box<dyn Watch>> {
        let from = from.max(0);
        // The first etcd revision the watch needs; reading the state at it fails exactly when
        // etcd compacted it away (and says "future" when it is not written yet: fine).
        let start = to_etcd(from) + 1;
        let compacted = self.worker.call(
            &format!("starting a watch of {prefix}"),
            move |mut c| async move {
                let opts = GetOptions::new().with_count_only().with_revision(start);
                match c.get("/", Some(opts)).await {
                    Ok(_) => Ok(false),
                    Err(e) if is_future(&e) => Ok(false),
                    Err(e) if is_compacted(&e) => Ok(true),
                    Err(e) => Err(e),
                }
            },
        )?;
        if compacted {
            let oldest = super::watch::oldest(&self.worker, prefix, start)?;
            return Err(Error::Compacted {
                requested: from,
                oldest,
            });
        }
        Ok(Box::new(EtcdWatch::new(self.worker.clone(), prefix, from)))
    }

    fn compact(&self, keep: Revision) -> Result<()> {
        let current = self.etcd_revision()?;
        let target = to_etcd(keep.max(0)).min(current);
        self.worker.call(
            &format!("compacting to revision {keep}"),
            move |mut c| async move {
                match c.compact(target, None).await {
                    Ok(_) => Ok(()),
                    // Compaction never goes backwards: already compacted further is fine.
                    Err(e) if is_compacted(&e) => Ok(()),
                    Err(e) => Err(e),
                }
            },
        )
    }
}
