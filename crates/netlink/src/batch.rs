//! Several requests sent to the kernel in one datagram, to save round trips.

use std::fmt;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLMSG_ERROR, NLMSG_OVERRUN, NLM_F_ACK,
    NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;

use crate::addr::address_message;
use crate::error::{Context, Error, Result};
use crate::handle::{kernel_error, malformed, read_i32, replies, Reply, NLMSG_HDRLEN};
use crate::link_spec::LinkChange;
use crate::neigh::proxy_delay_message;
use crate::route::Route;
use crate::Handle;

/// One request of a [`Batch`].
#[derive(Clone, Debug)]
struct Item {
    op: &'static str,
    object: String,
    msg: RouteNetlinkMessage,
    flags: u16,
}

/// Requests that [`Handle::run_batch`] sends in one datagram. The kernel runs them in order
/// and acknowledges each; it goes on with the next ones after a failure, so a batch suits
/// steps whose partial result the caller undoes as a whole (e.g. by deleting the link).
#[derive(Clone, Debug, Default)]
pub struct Batch {
    items: Vec<Item>,
    /// A request refused before sending, `(object, why)`: the whole batch is then refused.
    invalid: Option<(String, String)>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Number of requests.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when there is no request.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    fn push(
        mut self,
        op: &'static str,
        object: String,
        msg: RouteNetlinkMessage,
        flags: u16,
    ) -> Self {
        self.items.push(Item {
            op,
            object,
            msg,
            flags,
        });
        self
    }

    /// Like [`Handle::set_link`].
    pub fn set_link(mut self, index: u32, change: &LinkChange) -> Self {
        let object = format!("link {index}: {change}");
        if let Err(d) = change.check() {
            self.invalid.get_or_insert((object.clone(), d));
        }
        self.push(
            "set",
            object,
            RouteNetlinkMessage::SetLink(change.message(index)),
            0,
        )
    }

    /// Like [`Handle::set_up`].
    pub fn set_up(self, index: u32) -> Self {
        self.set_link(index, &LinkChange::new().up(true))
    }

    /// Like [`Handle::add_address`].
    pub fn add_address(self, index: u32, addr: ipnet::Ipv4Net) -> Self {
        self.push(
            "add address",
            format!("{addr} to link {index}"),
            RouteNetlinkMessage::NewAddress(address_message(index, addr)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Like [`Handle::add_route`].
    pub fn add_route(self, r: &Route) -> Self {
        self.push(
            "add route",
            r.to_string(),
            RouteNetlinkMessage::NewRoute(r.to_message(false)),
            NLM_F_CREATE | NLM_F_EXCL,
        )
    }

    /// Like [`Handle::replace_route`].
    pub fn replace_route(self, r: &Route) -> Self {
        self.push(
            "replace route",
            r.to_string(),
            RouteNetlinkMessage::NewRoute(r.to_message(false)),
            NLM_F_CREATE | NLM_F_REPLACE,
        )
    }

    /// Like [`Handle::set_neigh_proxy_delay`].
    pub fn set_neigh_proxy_delay(self, index: u32, ms: u64) -> Self {
        self.push(
            "set ARP proxy_delay",
            format!("{ms} ms on link {index}"),
            RouteNetlinkMessage::SetNeighbourTable(proxy_delay_message(index, ms)),
            0,
        )
    }
}

impl fmt::Display for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<_> = self
            .items
            .iter()
            .map(|i| format!("{} {}", i.op, i.object))
            .collect();
        write!(f, "batch [{}]", parts.join("; "))
    }
}

impl Handle {
    /// Sends every request of `batch` in one datagram and waits for all their ACKs. All are
    /// run by the kernel, in order, even after one fails; the first failure (in batch order)
    /// is returned. Checks of [`LinkChange`]s that fail here send nothing.
    pub fn run_batch(&mut self, batch: &Batch) -> Result<()> {
        if batch.items.is_empty() {
            return Ok(());
        }
        if let Some((object, why)) = &batch.invalid {
            return Err(Error::from_errno("set", object.clone(), libc::EINVAL).with_detail(why));
        }
        let first = self.next_seq();
        self.sbuf.clear();
        for (n, i) in batch.items.iter().enumerate() {
            let mut header = NetlinkHeader::default();
            header.flags = i.flags | NLM_F_REQUEST | NLM_F_ACK;
            header.sequence_number = first.wrapping_add(n as u32);
            let mut nl = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(i.msg.clone()));
            nl.finalize();
            let at = self.sbuf.len();
            let len = nl.buffer_len();
            self.sbuf.resize(at + ((len + 3) & !3), 0);
            nl.serialize(&mut self.sbuf[at..at + len]);
        }
        // Keep the counter past the sequence numbers used here.
        for _ in 1..batch.items.len() {
            self.next_seq();
        }
        let op = "run netlink batch";
        self.send().ctx(op, batch)?;
        let mut results: Vec<Option<Result<()>>> = Vec::new();
        results.resize_with(batch.items.len(), || None);
        let mut pending = batch.items.len();
        while pending > 0 {
            let n = self.recv().ctx(op, batch)?;
            for reply in replies(&self.rbuf[..n]) {
                let Reply {
                    ty,
                    flags,
                    seq: mseq,
                    msg,
                } = reply.map_err(|()| malformed(op, batch))?;
                if ty == NLMSG_OVERRUN {
                    return Err(Error::from_errno(op, batch.to_string(), libc::ENOBUFS));
                }
                let k = mseq.wrapping_sub(first) as usize;
                if ty != NLMSG_ERROR || k >= results.len() || results[k].is_some() {
                    // Not an ACK of this batch (a late reply to an abandoned request).
                    continue;
                }
                let code = read_i32(msg, NLMSG_HDRLEN);
                let item = &batch.items[k];
                results[k] = Some(if code == 0 {
                    Ok(())
                } else {
                    Err(kernel_error(item.op, &item.object, code, msg, flags, false))
                });
                pending -= 1;
            }
        }
        results.into_iter().flatten().collect()
    }
}
