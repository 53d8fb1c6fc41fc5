//! `Display` for the model, printed the way `nft list` prints it (and in a form
//! `nft -f` reads back): values, expressions, rules, chains, sets, maps, tables.
//!
//! Like nft, a rule hides the protocol matches that a later field implies
//! (`meta l4proto tcp tcp dport 80` prints as `tcp dport 80`) and shows the one
//! `reject with tcp reset` needs (`meta l4proto tcp reject with tcp reset`).

use std::fmt::{self, Display, Formatter, Write};

use crate::model::*;

/// nft's names of ICMP types.
const ICMP_TYPES: &[(u8, &str)] = &[
    (0, "echo-reply"),
    (3, "destination-unreachable"),
    (4, "source-quench"),
    (5, "redirect"),
    (8, "echo-request"),
    (9, "router-advertisement"),
    (10, "router-solicitation"),
    (11, "time-exceeded"),
    (12, "parameter-problem"),
    (13, "timestamp-request"),
    (14, "timestamp-reply"),
    (15, "info-request"),
    (16, "info-reply"),
    (17, "address-mask-request"),
    (18, "address-mask-reply"),
];

/// nft's names of ICMP codes.
const ICMP_CODES: &[(u8, &str)] = &[
    (0, "net-unreachable"),
    (1, "host-unreachable"),
    (2, "prot-unreachable"),
    (3, "port-unreachable"),
    (4, "frag-needed"),
    (9, "net-prohibited"),
    (10, "host-prohibited"),
    (13, "admin-prohibited"),
];

/// Names of transport protocols (as in /etc/protocols).
const PROTOS: &[(u8, &str)] = &[
    (1, "icmp"),
    (2, "igmp"),
    (6, "tcp"),
    (17, "udp"),
    (41, "ipv6"),
    (47, "gre"),
    (50, "esp"),
    (51, "ah"),
    (58, "ipv6-icmp"),
    (132, "sctp"),
    (136, "udplite"),
];

fn name_of(table: &[(u8, &'static str)], v: u8) -> Option<&'static str> {
    table.iter().find(|(n, _)| *n == v).map(|(_, s)| *s)
}

/// The name of a transport protocol (`tcp`), or its number.
pub fn proto_name(p: u8) -> String {
    name_of(PROTOS, p)
        .map(str::to_string)
        .unwrap_or_else(|| p.to_string())
}

impl Display for Value {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Value::Ipv4(a) => write!(f, "{a}"),
            Value::Ipv4Prefix(p) if p.prefix_len() == 32 => write!(f, "{}", p.addr()),
            Value::Ipv4Prefix(p) => write!(f, "{}", p.trunc()),
            Value::Ipv4Range(a, b) if a == b => write!(f, "{a}"),
            Value::Ipv4Range(a, b) => write!(f, "{a}-{b}"),
            Value::Proto(p) => f.write_str(&proto_name(*p)),
            Value::Port(p) => write!(f, "{p}"),
            Value::PortRange(a, b) if a == b => write!(f, "{a}"),
            Value::PortRange(a, b) => write!(f, "{a}-{b}"),
            Value::Ifname(n) => write!(f, "\"{n}\""),
            Value::Mark(m) => write!(f, "0x{m:08x}"),
            Value::IcmpType(t) => match name_of(ICMP_TYPES, *t) {
                Some(n) => f.write_str(n),
                None => write!(f, "{t}"),
            },
            Value::IcmpCode(c) => match name_of(ICMP_CODES, *c) {
                Some(n) => f.write_str(n),
                None => write!(f, "{c}"),
            },
            Value::Concat(parts) => join(f, parts, " . "),
        }
    }
}

fn join<T: Display>(f: &mut Formatter<'_>, items: &[T], sep: &str) -> fmt::Result {
    for (i, it) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(sep)?;
        }
        write!(f, "{it}")?;
    }
    Ok(())
}

/// A key to sort values the way nft lists set elements (numerically).
fn sort_key(v: &Value) -> Vec<u8> {
    match v {
        Value::Ipv4(a) => a.octets().to_vec(),
        Value::Ipv4Prefix(p) => p.trunc().addr().octets().to_vec(),
        Value::Ipv4Range(a, _) => a.octets().to_vec(),
        Value::Proto(p) | Value::IcmpType(p) | Value::IcmpCode(p) => vec![*p],
        Value::Port(p) | Value::PortRange(p, _) => p.to_be_bytes().to_vec(),
        Value::Ifname(n) => n.as_bytes().to_vec(),
        Value::Mark(m) => m.to_be_bytes().to_vec(),
        Value::Concat(parts) => parts.iter().flat_map(sort_key).collect(),
    }
}

impl Display for Verdict {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Verdict::Accept => f.write_str("accept"),
            Verdict::Drop => f.write_str("drop"),
            Verdict::Return => f.write_str("return"),
            Verdict::Continue => f.write_str("continue"),
            Verdict::Jump(c) => write!(f, "jump {c}"),
            Verdict::Goto(c) => write!(f, "goto {c}"),
        }
    }
}

impl Display for Data {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            Data::Verdict(v) => v.fmt(f),
            Data::Value(v) => v.fmt(f),
        }
    }
}

impl Display for KeyType {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            KeyType::Concat(parts) => join(f, parts, " . "),
            other => f.write_str(other.nft_name()),
        }
    }
}

impl Display for MapData {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        match self {
            MapData::Verdict => f.write_str("verdict"),
            MapData::Value(k) => k.fmt(f),
        }
    }
}

/// Prints `{ a, b }` sorted like nft.
fn write_elements<T: Display>(f: &mut Formatter<'_>, mut items: Vec<(Vec<u8>, T)>) -> fmt::Result {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    f.write_str("{ ")?;
    for (i, (_, it)) in items.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{it}")?;
    }
    f.write_str(" }")
}

struct Pair<'a, A, B>(&'a A, &'a B);

impl<A: Display, B: Display> Display for Pair<'_, A, B> {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write!(f, "{} : {}", self.0, self.1)
    }
}

/// Prints a key (fields joined by ` . `), upgrading `th` to `tcp`/`udp` when the
/// rule already knows the protocol, as nft does.
fn write_key(f: &mut Formatter<'_>, key: &[Field], l4: Option<u8>) -> fmt::Result {
    for (i, field) in key.iter().enumerate() {
        if i > 0 {
            f.write_str(" . ")?;
        }
        f.write_str(field_name(*field, l4))?;
        if let Field::Numgen(n) = field {
            write!(f, " {n}")?;
        }
    }
    Ok(())
}

fn field_name(field: Field, l4: Option<u8>) -> &'static str {
    match (field, l4) {
        (Field::ThDport, Some(PROTO_TCP)) => "tcp dport",
        (Field::ThSport, Some(PROTO_TCP)) => "tcp sport",
        (Field::ThDport, Some(PROTO_UDP)) => "udp dport",
        (Field::ThSport, Some(PROTO_UDP)) => "udp sport",
        _ => field.nft_name(),
    }
}

/// Whether a field reads a header of protocol `p` (so a match of `p` before it
/// is only its dependency, which nft does not print).
fn field_needs(field: Field, p: u8) -> bool {
    match field {
        Field::ThDport | Field::ThSport => p == PROTO_TCP || p == PROTO_UDP,
        other => other.implied_l4proto() == Some(p),
    }
}

/// Whether an explicit `meta l4proto p` is hidden by nft: a later field of the
/// same protocol follows, with only matches in between.
fn l4proto_hidden(rest: &[Expr], p: u8) -> bool {
    for e in rest {
        let key: &[Field] = match e {
            Expr::Match {
                field: Field::L4Proto,
                ..
            } => return false,
            Expr::Match { field, .. } => std::slice::from_ref(field),
            Expr::Lookup { key, .. } | Expr::Vmap { key, .. } => key,
            Expr::CtState(_) | Expr::MarkMasked { .. } | Expr::NumgenIs { .. } => &[],
            _ => return false,
        };
        if key.iter().any(|f| field_needs(*f, p)) {
            return true;
        }
    }
    false
}

/// Prints one expression given the protocol the rule knows so far.
fn write_expr(f: &mut Formatter<'_>, e: &Expr, l4: Option<u8>) -> fmt::Result {
    match e {
        Expr::Match { field, op, value } => {
            f.write_str(field_name(*field, l4))?;
            f.write_str(if *op == CmpOp::Neq { " != " } else { " " })?;
            write!(f, "{value}")
        }
        Expr::Lookup { key, negate, set } => {
            write_key(f, key, l4)?;
            f.write_str(if *negate { " != " } else { " " })?;
            match set {
                SetRef::Named(n) => write!(f, "@{n}"),
                SetRef::Anonymous(items) => {
                    write_elements(f, items.iter().map(|v| (sort_key(v), v)).collect())
                }
            }
        }
        Expr::Vmap { key, map } => {
            write_key(f, key, l4)?;
            f.write_str(" vmap ")?;
            match map {
                MapRef::Named(n) => write!(f, "@{n}"),
                MapRef::Anonymous(items) => write_elements(
                    f,
                    items
                        .iter()
                        .map(|(k, v)| (sort_key(k), Pair(k, v)))
                        .collect(),
                ),
            }
        }
        Expr::NumgenVmap { targets } => {
            write!(f, "numgen random mod {} vmap ", targets.len())?;
            let idx: Vec<usize> = (0..targets.len()).collect();
            let items: Vec<_> = idx
                .iter()
                .zip(targets)
                .map(|(i, t)| ((*i as u32).to_be_bytes().to_vec(), Pair(i, t)))
                .collect();
            write_elements(f, items)
        }
        Expr::NumgenIs { modulus, value } => write!(f, "numgen random mod {modulus} {value}"),
        Expr::CtState(s) => write!(f, "ct state {}", s.names().join(",")),
        Expr::MarkMasked { mask, op, value } => {
            let op = if *op == CmpOp::Neq { "!=" } else { "==" };
            write!(f, "meta mark & 0x{mask:08x} {op} 0x{value:08x}")
        }
        Expr::SetMark(MarkSet::Value(v)) => write!(f, "meta mark set 0x{v:08x}"),
        Expr::SetMark(MarkSet::Or(v)) => write!(f, "meta mark set meta mark | 0x{v:08x}"),
        Expr::SetMark(MarkSet::And(v)) => write!(f, "meta mark set meta mark & 0x{v:08x}"),
        Expr::Counter => f.write_str("counter"),
        Expr::Log { prefix: None } => f.write_str("log"),
        Expr::Log { prefix: Some(p) } => write!(f, "log prefix \"{p}\""),
        Expr::Verdict(v) => write!(f, "{v}"),
        Expr::Reject(r) => match r {
            Reject::PortUnreachable => f.write_str("reject"),
            Reject::AdminProhibited => f.write_str("reject with icmpx admin-prohibited"),
            Reject::HostUnreachable => f.write_str("reject with icmpx host-unreachable"),
            Reject::TcpReset if l4 == Some(PROTO_TCP) => f.write_str("reject with tcp reset"),
            Reject::TcpReset => f.write_str("meta l4proto tcp reject with tcp reset"),
            Reject::IcmpPortUnreachable => f.write_str("reject with icmp port-unreachable"),
            Reject::IcmpAdminProhibited => f.write_str("reject with icmp admin-prohibited"),
        },
        Expr::Dnat { addr, port } => write_nat(f, "dnat", *addr, *port),
        Expr::Snat { addr, port } => write_nat(f, "snat", *addr, *port),
        Expr::DnatMap { key, map } => {
            f.write_str("dnat ip to ")?;
            write_key(f, key, l4)?;
            write!(f, " map @{map}")
        }
        Expr::SetUpdate { key, set } => {
            write!(f, "update @{set} {{ ")?;
            write_key(f, key, l4)?;
            f.write_str(" }")
        }
        Expr::Masquerade { fully_random } => {
            f.write_str("masquerade")?;
            if *fully_random {
                f.write_str(" fully-random")?;
            }
            Ok(())
        }
    }
}

fn write_nat(
    f: &mut Formatter<'_>,
    kind: &str,
    addr: std::net::Ipv4Addr,
    port: Option<u16>,
) -> fmt::Result {
    match port {
        Some(p) => write!(f, "{kind} ip to {addr}:{p}"),
        None => write!(f, "{kind} ip to {addr}"),
    }
}

impl Display for Expr {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        write_expr(f, self, None)
    }
}

impl Display for Rule {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let mut l4: Option<u8> = None;
        let mut first = true;
        for (i, e) in self.exprs.iter().enumerate() {
            if let Expr::Match {
                field: Field::L4Proto,
                op: CmpOp::Eq,
                value: Value::Proto(p),
            } = e
            {
                l4 = Some(*p);
                if l4proto_hidden(&self.exprs[i + 1..], *p) {
                    continue;
                }
            }
            if !first {
                f.write_str(" ")?;
            }
            first = false;
            write_expr(f, e, l4)?;
            match e {
                Expr::Match { field, .. } => {
                    l4 = field.implied_l4proto().or(l4);
                }
                Expr::Lookup { key, .. } | Expr::Vmap { key, .. } | Expr::DnatMap { key, .. } => {
                    if let Some(p) = key.iter().find_map(|k| k.implied_l4proto()) {
                        l4 = Some(p);
                    }
                }
                Expr::Reject(Reject::TcpReset) => l4 = Some(PROTO_TCP),
                _ => {}
            }
        }
        if let Some(c) = &self.comment {
            if !first {
                f.write_str(" ")?;
            }
            write!(f, "comment \"{c}\"")?;
        }
        Ok(())
    }
}

/// nft's names of standard priorities.
const STD_PRIOS: &[(i32, &str)] = &[
    (-300, "raw"),
    (-150, "mangle"),
    (-100, "dstnat"),
    (0, "filter"),
    (50, "security"),
    (100, "srcnat"),
];

/// A priority as nft prints it: `filter`, `filter + 5`, `dstnat`, or a number.
pub fn priority_text(hook: Hook, priority: i32) -> String {
    for (std, name) in STD_PRIOS {
        let compatible = match *name {
            "dstnat" => hook == Hook::Prerouting,
            "srcnat" => hook == Hook::Postrouting,
            _ => true,
        };
        let offset = priority - std;
        if !compatible || offset.abs() > 10 {
            continue;
        }
        return match offset {
            0 => name.to_string(),
            o if o > 0 => format!("{name} + {o}"),
            o => format!("{name} - {}", -o),
        };
    }
    priority.to_string()
}

impl Display for BaseChain {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        let policy = match self.policy {
            Policy::Accept => "accept",
            Policy::Drop => "drop",
        };
        write!(
            f,
            "type {} hook {} priority {}; policy {policy};",
            self.kind.nft_name(),
            self.hook.nft_name(),
            priority_text(self.hook, self.priority)
        )
    }
}

impl Display for Chain {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "\tchain {} {{", self.name)?;
        if let Some(b) = &self.base {
            writeln!(f, "\t\t{b}")?;
        }
        for r in &self.rules {
            writeln!(f, "\t\t{r}")?;
        }
        f.write_str("\t}\n")
    }
}

fn flags_text(flags: SetFlags) -> Option<String> {
    let mut v = Vec::new();
    if flags.constant {
        v.push("constant");
    }
    if flags.dynamic {
        v.push("dynamic");
    }
    if flags.interval {
        v.push("interval");
    }
    if flags.timeout.is_some() {
        v.push("timeout");
    }
    (!v.is_empty()).then(|| v.join(","))
}

/// A duration as nft prints it: `3h`, `1d2h3m4s`.
fn duration_text(secs: u32) -> String {
    let mut out = String::new();
    let mut left = secs;
    for (unit, n) in [("d", 86400), ("h", 3600), ("m", 60), ("s", 1)] {
        if left >= n {
            out.push_str(&format!("{}{unit}", left / n));
            left %= n;
        }
    }
    if out.is_empty() {
        out.push_str("0s");
    }
    out
}

impl Display for Set {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "\tset {} {{", self.name)?;
        writeln!(f, "\t\ttype {}", self.key)?;
        if self.flags.dynamic {
            writeln!(f, "\t\tsize 65535")?;
        }
        if let Some(fl) = flags_text(self.flags) {
            writeln!(f, "\t\tflags {fl}")?;
        }
        if let Some(t) = self.flags.timeout {
            writeln!(f, "\t\ttimeout {}", duration_text(t))?;
        }
        if !self.elements.is_empty() {
            f.write_str("\t\telements = ")?;
            write_elements(f, self.elements.iter().map(|v| (sort_key(v), v)).collect())?;
            f.write_str("\n")?;
        }
        f.write_str("\t}\n")
    }
}

impl Display for Map {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "\tmap {} {{", self.name)?;
        writeln!(f, "\t\ttype {} : {}", self.key, self.data)?;
        if let Some(fl) = flags_text(self.flags) {
            writeln!(f, "\t\tflags {fl}")?;
        }
        if !self.elements.is_empty() {
            f.write_str("\t\telements = ")?;
            let items = self
                .elements
                .iter()
                .map(|(k, d)| (sort_key(k), Pair(k, d)))
                .collect();
            write_elements(f, items)?;
            f.write_str("\n")?;
        }
        f.write_str("\t}\n")
    }
}

impl Display for Table {
    fn fmt(&self, f: &mut Formatter<'_>) -> fmt::Result {
        writeln!(f, "table {} {} {{", self.family.nft_name(), self.name)?;
        let mut blocks: Vec<String> = Vec::new();
        for s in &self.sets {
            blocks.push(s.to_string());
        }
        for m in &self.maps {
            blocks.push(m.to_string());
        }
        for c in &self.chains {
            blocks.push(c.to_string());
        }
        let mut out = String::new();
        for (i, b) in blocks.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            out.push_str(b);
        }
        f.write_str(&out)?;
        f.write_char('}')
    }
}
