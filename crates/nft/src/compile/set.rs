//! Sets and maps in kernel form: key and data types, flags, and elements
//! encoded as nf_tables expects them (intervals as start/end elements, as nft
//! does; concatenations padded to 4 bytes per part).

use crate::fasthash::FastSet;
use crate::model::{Data, KeyType, MapData, Set, SetFlags, Value, Verdict};

/// `NFT_SET_ANONYMOUS`
pub(crate) const SET_ANONYMOUS: u32 = 0x1;
/// `NFT_SET_CONSTANT`
pub(crate) const SET_CONSTANT: u32 = 0x2;
/// `NFT_SET_INTERVAL`
pub(crate) const SET_INTERVAL: u32 = 0x4;
/// `NFT_SET_MAP`
pub(crate) const SET_MAP: u32 = 0x8;
/// `NFT_SET_TIMEOUT`
pub(crate) const SET_TIMEOUT: u32 = 0x10;
/// `NFT_SET_EVAL` (nft's `dynamic`)
pub(crate) const SET_EVAL: u32 = 0x20;
/// Most elements a dynamic set holds (the kernel's default for them, stated).
pub(crate) const DYNAMIC_SET_SIZE: u32 = 65535;
/// `NFT_SET_CONCAT`
pub(crate) const SET_CONCAT: u32 = 0x80;

/// nft's byte order codes, kept in the set's user data.
pub(crate) const BYTEORDER_NONE: u32 = 0;
pub(crate) const BYTEORDER_HOST: u32 = 1;
pub(crate) const BYTEORDER_BIG: u32 = 2;

/// A key (or value) type as the kernel and nft see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeySpec {
    /// nft's datatype id (concatenations: ids shifted by 6 bits each).
    pub type_id: u32,
    /// Length in bytes (concatenations: parts padded to 4 bytes).
    pub len: u32,
    /// nft's byte order code.
    pub byteorder: u32,
    /// Lengths of the parts of a concatenation (unpadded); empty otherwise.
    pub parts: Vec<u32>,
}

/// Type id, length and byte order of a single type.
fn single(t: &KeyType) -> Result<(u32, u32, u32), String> {
    Ok(match t {
        KeyType::Ipv4Addr => (7, 4, BYTEORDER_BIG),
        KeyType::InetProto => (12, 1, BYTEORDER_HOST),
        KeyType::InetService => (13, 2, BYTEORDER_BIG),
        KeyType::Ifname => (41, 16, BYTEORDER_HOST),
        KeyType::Mark => (19, 4, BYTEORDER_HOST),
        KeyType::IcmpType => (14, 1, BYTEORDER_BIG),
        KeyType::IcmpCode => (32, 1, BYTEORDER_BIG),
        KeyType::Concat(_) => return Err("a concatenation cannot contain a concatenation".into()),
    })
}

/// Rounds up to a multiple of 4.
pub(crate) fn pad4(n: u32) -> u32 {
    n.div_ceil(4) * 4
}

impl KeySpec {
    /// The kernel form of a model type.
    pub(crate) fn of(t: &KeyType) -> Result<KeySpec, String> {
        match t {
            KeyType::Concat(parts) => {
                if parts.len() < 2 {
                    return Err("a concatenation needs at least two parts".into());
                }
                let (mut id, mut len, mut lens) = (0u32, 0u32, Vec::new());
                for p in parts {
                    let (pid, plen, _) = single(p)?;
                    id = (id << 6) | pid;
                    len += pad4(plen);
                    lens.push(plen);
                }
                if len > 64 {
                    return Err(format!("the key is {len} bytes long; at most 64 fit"));
                }
                Ok(KeySpec {
                    type_id: id,
                    len,
                    byteorder: BYTEORDER_NONE,
                    parts: lens,
                })
            }
            t => {
                let (type_id, len, byteorder) = single(t)?;
                Ok(KeySpec {
                    type_id,
                    len,
                    byteorder,
                    parts: Vec::new(),
                })
            }
        }
    }

    /// The 32-bit integer key of a `numgen` map.
    pub(crate) fn integer32() -> KeySpec {
        KeySpec {
            type_id: 4,
            len: 4,
            byteorder: BYTEORDER_HOST,
            parts: Vec::new(),
        }
    }
}

/// The data of a map element, encoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ElemData {
    Verdict(Verdict),
    Value(Vec<u8>),
}

/// One kernel set element.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Elem {
    pub key: Vec<u8>,
    /// Inclusive end of a concatenated interval (`NFTA_SET_ELEM_KEY_END`).
    pub key_end: Option<Vec<u8>>,
    pub data: Option<ElemData>,
    /// `NFT_SET_ELEM_INTERVAL_END`: the exclusive end of an interval.
    pub end: bool,
    /// An interval open to the top of the key space (nft's user data flag).
    pub open: bool,
    /// Time left before the element expires (`NFTA_SET_ELEM_EXPIRATION`), in
    /// milliseconds: elements of a dynamic set carried over a full replace.
    pub expires_ms: Option<u64>,
}

impl Elem {
    fn key(key: Vec<u8>, data: Option<ElemData>) -> Elem {
        Elem {
            key,
            key_end: None,
            data,
            end: false,
            open: false,
            expires_ms: None,
        }
    }

    /// An element of a dynamic set, carried over with the time it had left.
    pub(crate) fn carried(key: Vec<u8>, expires_ms: u64) -> Elem {
        Elem {
            expires_ms: Some(expires_ms),
            ..Elem::key(key, None)
        }
    }
}

/// A set or map in kernel form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetSpec {
    /// Name (`__set%d`/`__map%d` for anonymous sets: the kernel picks the number).
    pub name: String,
    pub flags: u32,
    pub key: KeySpec,
    /// `None` for a set; `Some(None)` for a verdict map; `Some(Some(t))` for a value map.
    pub data: Option<Option<KeySpec>>,
    /// The default timeout of elements (`NFTA_SET_TIMEOUT`), in milliseconds.
    pub timeout_ms: Option<u64>,
    pub elements: Vec<Elem>,
}

impl SetSpec {
    /// True for an anonymous set (bound to its rule).
    pub(crate) fn anonymous(&self) -> bool {
        self.flags & SET_ANONYMOUS != 0
    }

    /// The number of elements the kernel reports (interval ends not counted).
    pub(crate) fn count(&self) -> usize {
        self.elements.iter().filter(|e| !e.end).count()
    }
}

/// The bytes of an exact (non-interval) single value, unpadded.
pub(crate) fn value_bytes(v: &Value) -> Result<Vec<u8>, String> {
    Ok(match v {
        Value::Ipv4(a) => a.octets().to_vec(),
        Value::Ipv4Prefix(p) if p.prefix_len() == 32 => p.addr().octets().to_vec(),
        Value::Ipv4Range(a, b) if a == b => a.octets().to_vec(),
        Value::Proto(p) | Value::IcmpType(p) | Value::IcmpCode(p) => vec![*p],
        Value::Port(p) => p.to_be_bytes().to_vec(),
        Value::PortRange(a, b) if a == b => a.to_be_bytes().to_vec(),
        Value::Mark(m) => m.to_ne_bytes().to_vec(),
        Value::Ifname(n) => ifname_bytes(n)?,
        Value::Concat(_) => return Err("a concatenation where a single value is expected".into()),
        other => {
            return Err(format!(
                "{other} is an interval where an exact value is expected"
            ))
        }
    })
}

/// An interface name as the 16 bytes the kernel compares.
pub(crate) fn ifname_bytes(n: &str) -> Result<Vec<u8>, String> {
    if n.is_empty() || n.len() > 15 || n.contains(['\0', '*']) {
        return Err(format!(
            "interface name {n:?} must be 1-15 bytes (a wildcard `*` only ends a match)"
        ));
    }
    let mut b = n.as_bytes().to_vec();
    b.resize(16, 0);
    Ok(b)
}

/// The inclusive bounds of a single value, as bytes (big-endian numbers for
/// the types that may form intervals).
fn bounds(v: &Value) -> Result<(Vec<u8>, Vec<u8>), String> {
    Ok(match v {
        Value::Ipv4Prefix(p) => (
            p.network().octets().to_vec(),
            p.broadcast().octets().to_vec(),
        ),
        Value::Ipv4Range(a, b) if a <= b => (a.octets().to_vec(), b.octets().to_vec()),
        Value::PortRange(a, b) if a <= b => (a.to_be_bytes().to_vec(), b.to_be_bytes().to_vec()),
        Value::Ipv4Range(..) | Value::PortRange(..) => {
            return Err(format!("range {v} ends before it starts"))
        }
        other => {
            let b = value_bytes(other)?;
            (b.clone(), b)
        }
    })
}

/// Checks that `v` has type `t`.
pub(crate) fn check_type(v: &Value, t: &KeyType) -> Result<(), String> {
    let vt = v.key_type();
    if &vt == t {
        Ok(())
    } else {
        Err(format!("{v} is of type {vt}, expected {t}"))
    }
}

/// Adds one to a big-endian number; `None` on overflow.
fn successor(b: &[u8]) -> Option<Vec<u8>> {
    let mut out = b.to_vec();
    for byte in out.iter_mut().rev() {
        if *byte == 0xff {
            *byte = 0;
        } else {
            *byte += 1;
            return Some(out);
        }
    }
    None
}

/// Pads each part to 4 bytes and joins them.
fn join_padded(parts: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in parts {
        out.extend_from_slice(p);
        out.resize(pad4(out.len() as u32) as usize, 0);
    }
    out
}

/// Encodes the data of a map element.
fn encode_data(
    d: &Data,
    data: &Option<Option<KeySpec>>,
    dtype: Option<&KeyType>,
) -> Result<Option<ElemData>, String> {
    match (d, data, dtype) {
        (Data::Verdict(v), Some(None), _) => Ok(Some(ElemData::Verdict(v.clone()))),
        (Data::Value(v), Some(Some(_)), Some(t)) => {
            check_type(v, t)?;
            let parts = v
                .parts()
                .iter()
                .map(value_bytes)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Some(ElemData::Value(if parts.len() > 1 {
                join_padded(&parts)
            } else {
                parts.concat()
            })))
        }
        (d, _, _) => Err(format!("element data {d} does not fit the map's data type")),
    }
}

/// Builds the kernel form of a set or map.
///
/// `data`: `None` for a set, else the map's data type. Elements are checked
/// against the key type; intervals are merged (sets) or checked for overlap (maps).
pub(crate) fn build(
    name: &str,
    key: &KeyType,
    flags: SetFlags,
    data: Option<&MapData>,
    elements: &[(&Value, Option<&Data>)],
    anonymous: bool,
) -> Result<SetSpec, String> {
    let kspec = KeySpec::of(key)?;
    let dspec = match data {
        None => None,
        Some(MapData::Verdict) => Some(None),
        Some(MapData::Value(t)) => Some(Some(KeySpec::of(t)?)),
    };
    let dtype = match data {
        Some(MapData::Value(t)) => Some(t),
        _ => None,
    };
    let has_interval = elements.iter().any(|(v, _)| v.is_interval());
    if has_interval && !flags.interval {
        return Err("elements with prefixes or ranges need `flags interval`".into());
    }
    let concat = matches!(key, KeyType::Concat(_));
    let mut f = 0;
    if anonymous {
        f |= SET_ANONYMOUS | SET_CONSTANT;
    }
    if flags.constant {
        f |= SET_CONSTANT;
    }
    if flags.interval {
        f |= SET_INTERVAL;
        if concat {
            f |= SET_CONCAT;
        }
    }
    if data.is_some() {
        f |= SET_MAP;
    }
    if flags.dynamic {
        if anonymous || flags.constant || flags.interval {
            return Err("a dynamic set cannot be anonymous, constant or an interval set".into());
        }
        f |= SET_EVAL;
    }
    if let Some(t) = flags.timeout {
        if t == 0 {
            return Err("a timeout must be at least 1 second".into());
        }
        f |= SET_TIMEOUT;
    }
    let mut spec = SetSpec {
        name: name.to_string(),
        flags: f,
        key: kspec,
        data: dspec,
        timeout_ms: flags.timeout.map(|t| u64::from(t) * 1000),
        elements: Vec::with_capacity(elements.len()),
    };
    if flags.interval && !concat {
        if matches!(key, KeyType::Mark | KeyType::Ifname) {
            return Err(format!("interval sets of {key} are not supported"));
        }
        build_ranges(&mut spec, key, elements, dtype)?;
    } else {
        let mut seen: FastSet<Vec<u8>> =
            FastSet::with_capacity_and_hasher(elements.len(), Default::default());
        for (v, d) in elements {
            check_type(v, key)?;
            let data = match d {
                Some(d) => encode_data(d, &spec.data, dtype)?,
                None if spec.data.is_some() => return Err(format!("map element {v} has no data")),
                None => None,
            };
            let b = v
                .parts()
                .iter()
                .map(bounds)
                .collect::<Result<Vec<_>, _>>()?;
            let lo: Vec<Vec<u8>> = b.iter().map(|(l, _)| l.clone()).collect();
            let hi: Vec<Vec<u8>> = b.iter().map(|(_, h)| h.clone()).collect();
            let key_bytes = if concat {
                join_padded(&lo)
            } else {
                lo.concat()
            };
            if !seen.insert(key_bytes.clone()) {
                let dup = spec.elements.iter().find(|e| e.key == key_bytes);
                if dup.map(|e| &e.data) != Some(&data) {
                    return Err(format!("element {v} appears twice with different data"));
                }
                continue;
            }
            let mut e = Elem::key(key_bytes, data);
            if flags.interval {
                e.key_end = Some(join_padded(&hi));
            }
            spec.elements.push(e);
        }
    }
    Ok(spec)
}

/// An inclusive interval of a single-part key, its data, and how it was written.
struct Span {
    lo: Vec<u8>,
    hi: Vec<u8>,
    data: Option<ElemData>,
    text: String,
}

/// Intervals of a single-part key, as nft sends them: a start element and an
/// exclusive end element flagged `INTERVAL_END`, sorted, preceded by a zero end
/// element when the first interval does not start at zero.
fn build_ranges(
    spec: &mut SetSpec,
    key: &KeyType,
    elements: &[(&Value, Option<&Data>)],
    dtype: Option<&KeyType>,
) -> Result<(), String> {
    let mut ranges: Vec<Span> = Vec::new();
    for (v, d) in elements {
        check_type(v, key)?;
        let (lo, hi) = bounds(v)?;
        let data = match d {
            Some(d) => encode_data(d, &spec.data, dtype)?,
            None if spec.data.is_some() => return Err(format!("map element {v} has no data")),
            None => None,
        };
        ranges.push(Span {
            lo,
            hi,
            data,
            text: v.to_string(),
        });
    }
    ranges.sort_by(|a, b| a.lo.cmp(&b.lo).then(a.hi.cmp(&b.hi)));
    let mut merged: Vec<Span> = Vec::new();
    for r in ranges {
        if let Some(last) = merged.last_mut() {
            let touches = successor(&last.hi).is_none_or(|next| r.lo <= next);
            if touches && spec.data.is_none() {
                if r.hi > last.hi {
                    last.hi = r.hi;
                }
                continue;
            }
            if r.lo <= last.hi {
                if r.lo == last.lo && r.hi == last.hi && r.data == last.data {
                    continue;
                }
                return Err(format!("map elements {} and {} overlap", last.text, r.text));
            }
        }
        merged.push(r);
    }
    if let Some(first) = merged.first() {
        if first.lo.iter().any(|b| *b != 0) {
            let mut zero = Elem::key(vec![0; first.lo.len()], None);
            zero.end = true;
            spec.elements.push(zero);
        }
    }
    for Span { lo, hi, data, .. } in merged {
        let mut start = Elem::key(lo, data);
        match successor(&hi) {
            Some(end) => {
                spec.elements.push(start);
                let mut e = Elem::key(end, None);
                e.end = true;
                spec.elements.push(e);
            }
            None => {
                start.open = true;
                spec.elements.push(start);
            }
        }
    }
    Ok(())
}

/// The kernel form of a named set of the model.
pub(crate) fn of_set(s: &Set) -> Result<SetSpec, String> {
    let elems: Vec<(&Value, Option<&Data>)> = s.elements.iter().map(|v| (v, None)).collect();
    build(&s.name, &s.key, s.flags, None, &elems, false)
}

/// The kernel form of a named map of the model.
pub(crate) fn of_map(m: &crate::model::Map) -> Result<SetSpec, String> {
    let elems: Vec<(&Value, Option<&Data>)> =
        m.elements.iter().map(|(k, d)| (k, Some(d))).collect();
    build(&m.name, &m.key, m.flags, Some(&m.data), &elems, false)
}
