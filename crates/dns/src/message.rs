//! DNS messages: a query in, a response out (hickory-proto does the wire format).

use std::net::Ipv4Addr;

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, PTR};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};

use crate::lookup::Hit;
use crate::zone::Zone;

/// The largest UDP payload we send to a client that announced EDNS (the value DNS flag day 2020
/// settled on, safe from fragmentation).
const EDNS_PAYLOAD: u16 = 1232;
/// The classic UDP limit without EDNS.
const PLAIN_UDP: usize = 512;

/// The transport a query came over, which bounds the size of the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Transport {
    Udp,
    Tcp,
}

/// What to do with a query.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Reply {
    /// Send this response.
    Answer(Vec<u8>),
    /// The name is not weft's: forward the query as is (the caller refuses if it cannot).
    Forward,
    /// Say nothing (not a query, or too short to carry an id).
    Drop,
}

impl Zone {
    /// Answers one query from `asker` (its source address) with a full DNS response message.
    ///
    /// Names that are not weft's get `REFUSED` here (the [`crate::Server`] forwards them when it
    /// has an upstream). The answer is sized for UDP (512 bytes, or what EDNS allows) and
    /// truncated (TC) beyond that. The result is empty when there is nothing to answer: fewer
    /// than 12 bytes, or a message that is itself a response.
    pub fn answer(&self, asker: Ipv4Addr, query: &[u8]) -> Vec<u8> {
        match self.respond(asker, query, Transport::Udp, false) {
            Reply::Answer(bytes) => bytes,
            Reply::Forward => refused(query),
            Reply::Drop => Vec::new(),
        }
    }

    /// The reply to `query`; `recursion` says whether the server forwards (the RA bit).
    pub(crate) fn respond(
        &self,
        asker: Ipv4Addr,
        query: &[u8],
        transport: Transport,
        recursion: bool,
    ) -> Reply {
        if query.len() < 12 || query[2] & 0x80 != 0 {
            return Reply::Drop;
        }
        let request = match Message::from_vec(query) {
            Ok(m) => m,
            Err(_) => return Reply::Answer(error_reply(query, ResponseCode::FormErr)),
        };
        let mut resp = Message::response(request.metadata.id, request.metadata.op_code);
        resp.metadata.recursion_desired = request.metadata.recursion_desired;
        resp.metadata.checking_disabled = request.metadata.checking_disabled;
        resp.metadata.recursion_available = recursion;
        resp.add_queries(request.queries.iter().cloned());
        if request.edns.is_some() {
            let mut edns = Edns::new();
            edns.set_max_payload(EDNS_PAYLOAD);
            resp.set_edns(edns);
        }
        if request.metadata.op_code != OpCode::Query {
            resp.metadata.response_code = ResponseCode::NotImp;
            return Reply::Answer(encode(&resp, &request, transport));
        }
        let [q] = request.queries.as_slice() else {
            resp.metadata.response_code = ResponseCode::FormErr;
            return Reply::Answer(encode(&resp, &request, transport));
        };
        if !matches!(q.query_class(), DNSClass::IN | DNSClass::ANY) {
            return Reply::Forward;
        }
        match self.lookup(asker, &normalize(q.name())) {
            Hit::NotOurs => return Reply::Forward,
            Hit::NxDomain => resp.metadata.response_code = ResponseCode::NXDomain,
            Hit::NoData => {}
            Hit::Addr(ip) => {
                if matches!(q.query_type(), RecordType::A | RecordType::ANY) {
                    let rdata = RData::A(A(ip));
                    resp.add_answer(Record::from_rdata(q.name().clone(), self.ttl, rdata));
                }
            }
            Hit::Ptr(target) => {
                if matches!(q.query_type(), RecordType::PTR | RecordType::ANY) {
                    if let Some(record) = self.ptr_record(q, &target) {
                        resp.add_answer(record);
                    }
                }
            }
        }
        resp.metadata.authoritative = true;
        Reply::Answer(encode(&resp, &request, transport))
    }

    fn ptr_record(&self, q: &Query, target: &str) -> Option<Record> {
        match Name::from_ascii(target) {
            Ok(name) => Some(Record::from_rdata(
                q.name().clone(),
                self.ttl,
                RData::PTR(PTR(name)),
            )),
            Err(e) => {
                tracing::warn!("dns: PTR target {target:?} is not a valid name: {e}");
                None
            }
        }
    }
}

/// The name as lookups see it: lowercase labels joined by dots, no final dot.
pub(crate) fn normalize(name: &Name) -> String {
    let labels: Vec<String> = name
        .iter()
        .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
        .collect();
    labels.join(".")
}

/// Encodes `resp`, truncating it (TC, no records) when it does not fit the transport.
fn encode(resp: &Message, request: &Message, transport: Transport) -> Vec<u8> {
    let limit = match transport {
        Transport::Tcp => usize::from(u16::MAX),
        Transport::Udp => match &request.edns {
            Some(edns) => usize::from(edns.max_payload().clamp(512, EDNS_PAYLOAD)),
            None => PLAIN_UDP,
        },
    };
    let bytes = match resp.to_vec() {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!("dns: cannot encode the response to query {}: {e}", resp.id);
            return error_reply_for(request, ResponseCode::ServFail);
        }
    };
    if bytes.len() <= limit {
        return bytes;
    }
    resp.truncate()
        .to_vec()
        .unwrap_or_else(|_| error_reply_for(request, ResponseCode::ServFail))
}

/// A bare error response (header only) to a query that may not even decode.
pub(crate) fn error_reply(query: &[u8], code: ResponseCode) -> Vec<u8> {
    let mut out = vec![0u8; 12];
    if query.len() >= 2 {
        out[..2].copy_from_slice(&query[..2]);
    }
    let opcode = query.get(2).map_or(0, |b| b & 0x78);
    let rd = query.get(2).map_or(0, |b| b & 0x01);
    out[2] = 0x80 | opcode | rd;
    out[3] = code.low();
    out
}

fn error_reply_for(request: &Message, code: ResponseCode) -> Vec<u8> {
    let mut resp = Message::error_msg(request.metadata.id, request.metadata.op_code, code);
    resp.metadata.recursion_desired = request.metadata.recursion_desired;
    resp.to_vec()
        .unwrap_or_else(|_| error_reply(&request.metadata.id.to_be_bytes(), code))
}

/// `REFUSED` for `query`, echoing its question when it decodes.
pub(crate) fn refused(query: &[u8]) -> Vec<u8> {
    status_reply(query, ResponseCode::Refused)
}

/// A response with `code` and no records, echoing the question of `query` when it decodes.
pub(crate) fn status_reply(query: &[u8], code: ResponseCode) -> Vec<u8> {
    let Ok(request) = Message::from_vec(query) else {
        return error_reply(query, code);
    };
    if request.metadata.message_type != MessageType::Query {
        return error_reply(query, code);
    }
    let mut resp = Message::error_msg(request.metadata.id, request.metadata.op_code, code);
    resp.metadata.recursion_desired = request.metadata.recursion_desired;
    resp.add_queries(request.queries.iter().cloned());
    resp.to_vec().unwrap_or_else(|_| error_reply(query, code))
}
