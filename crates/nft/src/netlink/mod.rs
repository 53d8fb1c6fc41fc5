//! The nf_tables backend: speaks nfnetlink itself (no program, no library),
//! replaces a table in one transaction, updates it incrementally, reads it back.

pub(crate) mod attr;
pub(crate) mod consts;
pub(crate) mod encode;
mod errors;
pub(crate) mod exprs;
mod read;
pub(crate) mod socket;
pub(crate) mod update;

use std::io;

use weft_netlink::{run_in_netns, Netns};

use crate::model::{Family, Table};
use crate::summary::Summary;
use crate::{Backend, Error, Result};
use encode::{encode_delete, encode_table_keeping, Batch, Carried};
pub(crate) use errors::kernel_error;
use socket::Socket;

/// What the last transaction sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyStats {
    /// Messages in the batch (BATCH_BEGIN and BATCH_END included); 0 when
    /// an update found nothing to change.
    pub messages: usize,
    /// Bytes of the batch (sent in one `sendmsg`).
    pub bytes: usize,
    /// Whether it replaced the whole table (else: an incremental update).
    pub full: bool,
}

/// Programs nf_tables over a `NETLINK_NETFILTER` socket bound to one network
/// namespace. Every [`Backend::apply`] or [`Backend::update`] is one
/// transaction: the kernel commits all of it or nothing.
#[derive(Debug)]
pub struct NetlinkBackend {
    sock: Socket,
    last: ApplyStats,
}

impl NetlinkBackend {
    /// A backend for the calling thread's network namespace.
    pub fn new() -> Result<NetlinkBackend> {
        let sock =
            Socket::open().map_err(|e| Error::io("open nf_tables socket", "current netns", e))?;
        Ok(NetlinkBackend {
            sock,
            last: ApplyStats::default(),
        })
    }

    /// A backend for the network namespace `ns` (the socket is opened on a
    /// short-lived thread that joined it, and keeps talking to it).
    pub fn in_netns(ns: &Netns) -> Result<NetlinkBackend> {
        let sock = run_in_netns(ns, Socket::open)?
            .map_err(|e| Error::io("open nf_tables socket", ns.to_string(), e))?;
        Ok(NetlinkBackend {
            sock,
            last: ApplyStats::default(),
        })
    }

    /// Size of the last transaction.
    pub fn last_stats(&self) -> ApplyStats {
        self.last
    }

    /// Sends a batch; maps the first kernel error to its object.
    fn run(
        &mut self,
        batch: &Batch,
        new: Option<&Table>,
        old: Option<&Table>,
        what: &str,
    ) -> Result<()> {
        self.sock.reserve_seq(batch.len());
        let first = batch.first_seq;
        let range = first..first.wrapping_add(batch.len() as u32);
        let out = self.sock.transact(&batch.buf, range).map_err(|e| {
            let op = if e.raw_os_error() == Some(libc::EMSGSIZE) {
                format!(
                    "send nf_tables batch of {} bytes (larger than the socket buffer allows: \
                     run as root for SO_SNDBUFFORCE, or raise net.core.wmem_max)",
                    batch.buf.len()
                )
            } else {
                "send nf_tables batch".to_string()
            };
            Error::io(op, what.to_string(), e)
        })?;
        let Some(err) = out.errors.iter().min_by_key(|e| e.seq.wrapping_sub(first)) else {
            if out.lost {
                return Err(Error::io(
                    "nf_tables batch",
                    what.to_string(),
                    io::Error::from_raw_os_error(libc::ENOBUFS),
                ));
            }
            return Ok(());
        };
        Err(errors::describe(
            batch,
            new,
            old,
            what,
            err,
            out.errors.len() - 1,
        ))
    }

    /// One transaction turning `old` into `new` where both are *parts* of the
    /// table the kernel holds (the same name; what neither holds is left as it
    /// is): only their differences are sent, and nothing is ever replaced whole.
    /// An error when the change cannot be expressed as a difference (a set's
    /// type or a base chain changed, an interval set changed: it is refilled
    /// whole) or the kernel refuses it; the caller then programs the whole table.
    pub fn update_part(&mut self, old: &Table, new: &Table) -> Result<()> {
        let refill = new.sets.iter().any(|s| {
            s.flags.interval && old.set(&s.name).is_some_and(|o| o.elements != s.elements)
        }) || new.maps.iter().any(|m| {
            m.flags.interval && old.map(&m.name).is_some_and(|o| o.elements != m.elements)
        });
        let batch = match update::encode_update(old, new, self.sock.next_seq())? {
            Some(b) if !refill => b,
            _ => {
                return Err(Error::invalid(
                    table_id(new),
                    "the change is not a difference of parts (a set's type, a base chain or an interval set changed)",
                ))
            }
        };
        self.send_difference(&batch, old, new)
    }

    /// Sends a batch of differences from `old` to `new`: nothing when it holds no change
    /// (only the batch's begin and end), and records what was sent.
    fn send_difference(&mut self, batch: &Batch, old: &Table, new: &Table) -> Result<()> {
        if batch.len() <= 2 {
            self.last = ApplyStats::default();
            return Ok(());
        }
        self.last = ApplyStats {
            messages: batch.len(),
            bytes: batch.buf.len(),
            full: false,
        };
        self.run(batch, Some(new), Some(old), &table_id(new))
    }

    /// The elements the kernel holds in the dynamic sets of `table` (none when
    /// the table or a set does not exist yet, or cannot be read).
    fn dynamic_elements(&mut self, table: &Table) -> Vec<Carried> {
        table
            .sets
            .iter()
            .filter(|s| s.flags.dynamic)
            .filter_map(|s| {
                read::expiring_elements(&mut self.sock, table.family, &table.name, &s.name)
                    .ok()
                    .filter(|e| !e.is_empty())
                    .map(|e| (s.name.clone(), e))
            })
            .collect()
    }

    fn get_table(&mut self, family: Family, name: &str) -> Result<()> {
        use consts::*;
        let what = format!("table {} {name}", family.nft_name());
        self.sock
            .request(|w, seq| {
                w.begin(
                    nft_type(NFT_MSG_GETTABLE),
                    NLM_F_REQUEST | NLM_F_ACK,
                    seq,
                    encode::nfproto(family),
                    0,
                );
                w.put_str(NFTA_TABLE_NAME, name);
                w.end();
            })
            .map_err(|e| Error::io("get", what.clone(), e))?
            .map(|_| ())
            .map_err(|e| kernel_error("get", what, &e, None, None))
    }
}

fn table_id(t: &Table) -> String {
    format!("table {} {}", t.family.nft_name(), t.name)
}

impl Backend for NetlinkBackend {
    /// Keeps what the packet path added to the table's dynamic sets (session
    /// affinity survives a full replace).
    fn apply(&mut self, table: &Table) -> Result<()> {
        let carry = self.dynamic_elements(table);
        let batch = encode_table_keeping(table, self.sock.next_seq(), &carry)?;
        self.last = ApplyStats {
            messages: batch.len(),
            bytes: batch.buf.len(),
            full: true,
        };
        self.run(&batch, Some(table), None, &table_id(table))
    }

    /// One transaction with only the differences between `old` and `new`;
    /// a full replace when the change cannot be expressed so (a set's type or
    /// a base chain changed), or when the kernel refuses the update (it does
    /// not hold `old`): then the full replace decides, and reports errors.
    fn update(&mut self, old: &Table, new: &Table) -> Result<()> {
        let Some(batch) = update::encode_update(old, new, self.sock.next_seq())? else {
            return self.apply(new);
        };
        match self.send_difference(&batch, old, new) {
            Err(Error::Kernel { .. }) => self.apply(new),
            other => other,
        }
    }

    fn delete(&mut self, family: Family, name: &str) -> Result<()> {
        let batch = encode_delete(family, name, self.sock.next_seq())?;
        let what = format!("table {} {name}", family.nft_name());
        match self.run(&batch, None, None, &what) {
            Err(e) if e.is_not_found() => Ok(()),
            other => other,
        }
    }

    fn exists(&mut self, family: Family, name: &str) -> Result<bool> {
        match self.get_table(family, name) {
            Ok(()) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    fn read(&mut self, family: Family, name: &str) -> Result<Summary> {
        read::read(&mut self.sock, family, name)
    }
}
