//! The typed model of one nftables table: chains (base or regular), sets, maps
//! and rules. It knows nothing of netlink; [`crate::NetlinkBackend`] compiles it
//! to nf_tables messages and `Display` prints it the way `nft list` does.

mod expr;
mod value;

pub use expr::{CmpOp, CtStates, Expr, Field, MapRef, MarkSet, Reject, SetRef};
pub use value::{
    Data, KeyType, MapData, Value, Verdict, PROTO_ICMP, PROTO_SCTP, PROTO_TCP, PROTO_UDP,
};

/// The address family of a table.
///
/// Only `inet` tables can be programmed (weft's own table is `inet weft`); the
/// others can be named to check, read or delete them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Family {
    /// `inet`: IPv4 and IPv6.
    #[default]
    Inet,
    /// `ip`: IPv4.
    Ip,
    /// `ip6`: IPv6.
    Ip6,
}

impl Family {
    /// The name nft uses.
    pub fn nft_name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
        }
    }
}

/// One table: everything weft programs on a node, replaced as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Table {
    /// Always [`Family::Inet`] for a table that is applied.
    pub family: Family,
    /// The table's name (`weft`).
    pub name: String,
    /// Chains, created before any rule, so rules may jump to chains defined later.
    pub chains: Vec<Chain>,
    /// Named sets.
    pub sets: Vec<Set>,
    /// Named maps.
    pub maps: Vec<Map>,
}

impl Table {
    /// An empty `inet` table.
    pub fn new(name: &str) -> Table {
        Table {
            family: Family::Inet,
            name: name.to_string(),
            ..Table::default()
        }
    }

    /// The chain named `name`.
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name == name)
    }

    /// The map named `name`.
    pub fn map(&self, name: &str) -> Option<&Map> {
        self.maps.iter().find(|m| m.name == name)
    }

    /// The set named `name`.
    pub fn set(&self, name: &str) -> Option<&Set> {
        self.sets.iter().find(|s| s.name == name)
    }

    /// Counts of what the table holds: (chains, rules, sets + maps, elements).
    pub fn size(&self) -> (usize, usize, usize, usize) {
        let rules = self.chains.iter().map(|c| c.rules.len()).sum();
        let elements = self.sets.iter().map(|s| s.elements.len()).sum::<usize>()
            + self.maps.iter().map(|m| m.elements.len()).sum::<usize>();
        (
            self.chains.len(),
            rules,
            self.sets.len() + self.maps.len(),
            elements,
        )
    }
}

/// A chain: a base chain is attached to a netfilter hook; a regular chain is
/// only entered by `jump`/`goto` or a verdict map.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chain {
    /// Name, unique in the table.
    pub name: String,
    /// Hook, type, priority and policy of a base chain.
    pub base: Option<BaseChain>,
    /// Rules, in order.
    pub rules: Vec<Rule>,
}

impl Chain {
    /// A regular chain.
    pub fn regular(name: &str, rules: Vec<Rule>) -> Chain {
        Chain {
            name: name.to_string(),
            base: None,
            rules,
        }
    }

    /// A base chain.
    pub fn base(name: &str, base: BaseChain, rules: Vec<Rule>) -> Chain {
        Chain {
            name: name.to_string(),
            base: Some(base),
            rules,
        }
    }
}

/// What makes a chain a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BaseChain {
    /// The netfilter hook.
    pub hook: Hook,
    /// `filter` or `nat`.
    pub kind: ChainKind,
    /// Order among chains on the same hook (lower runs first): filter is 0,
    /// dstnat -100, srcnat 100.
    pub priority: i32,
    /// What happens to a packet no rule decided on.
    pub policy: Policy,
}

impl BaseChain {
    /// `type filter hook HOOK priority PRIO; policy POLICY;`
    pub fn filter(hook: Hook, priority: i32, policy: Policy) -> BaseChain {
        BaseChain {
            hook,
            kind: ChainKind::Filter,
            priority,
            policy,
        }
    }

    /// `type nat hook HOOK priority PRIO; policy accept;`
    pub fn nat(hook: Hook, priority: i32) -> BaseChain {
        BaseChain {
            hook,
            kind: ChainKind::Nat,
            priority,
            policy: Policy::Accept,
        }
    }
}

/// A netfilter hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    /// `prerouting`
    Prerouting,
    /// `input`
    Input,
    /// `forward`
    Forward,
    /// `output`
    Output,
    /// `postrouting`
    Postrouting,
}

impl Hook {
    /// The name nft uses.
    pub fn nft_name(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        }
    }
}

/// The type of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChainKind {
    /// `filter`
    Filter,
    /// `nat` (sees the first packet of each connection only).
    Nat,
}

impl ChainKind {
    /// The name nft uses.
    pub fn nft_name(self) -> &'static str {
        match self {
            ChainKind::Filter => "filter",
            ChainKind::Nat => "nat",
        }
    }
}

/// The policy of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Policy {
    /// `accept`
    #[default]
    Accept,
    /// `drop`
    Drop,
}

/// Flags of a set or map.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SetFlags {
    /// `interval`: elements may be prefixes and ranges.
    pub interval: bool,
    /// `constant`: the elements cannot change without replacing the table.
    pub constant: bool,
    /// `dynamic`: rules add elements from the packet path ([`crate::Expr::SetUpdate`]).
    pub dynamic: bool,
    /// `timeout` with `timeout Ns`: elements expire N seconds (at least 1) after they
    /// were last added or updated.
    pub timeout: Option<u32>,
}

/// A named set: `ip saddr @name` matches when the address is an element.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Set {
    /// Name, unique among the table's sets and maps.
    pub name: String,
    /// The type of the elements.
    pub key: KeyType,
    /// Flags.
    pub flags: SetFlags,
    /// Elements (prefixes and ranges need `flags.interval`).
    pub elements: Vec<Value>,
}

impl Set {
    /// A set of `key` elements; interval when any element is a prefix or range.
    pub fn new(name: &str, key: KeyType, elements: Vec<Value>) -> Set {
        let interval = elements.iter().any(Value::is_interval);
        Set {
            name: name.to_string(),
            key,
            flags: SetFlags {
                interval,
                ..SetFlags::default()
            },
            elements,
        }
    }

    /// `flags dynamic,timeout; timeout Ns`: an empty set that rules fill from the packet
    /// path (`update @name { ip saddr }`), each element expiring `timeout_secs` after its
    /// last update (kube-proxy's session affinity).
    pub fn dynamic(name: &str, key: KeyType, timeout_secs: u32) -> Set {
        Set {
            name: name.to_string(),
            key,
            flags: SetFlags {
                dynamic: true,
                timeout: Some(timeout_secs),
                ..SetFlags::default()
            },
            elements: Vec::new(),
        }
    }
}

/// A named map: a verdict map (`vmap`) or a map to values (`dnat ... map`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Map {
    /// Name, unique among the table's sets and maps.
    pub name: String,
    /// The type of the keys.
    pub key: KeyType,
    /// The type of the data.
    pub data: MapData,
    /// Flags.
    pub flags: SetFlags,
    /// Elements: key and data.
    pub elements: Vec<(Value, Data)>,
}

impl Map {
    /// A verdict map; interval when any key is a prefix or range.
    pub fn verdicts(name: &str, key: KeyType, elements: Vec<(Value, Verdict)>) -> Map {
        let interval = elements.iter().any(|(k, _)| k.is_interval());
        Map {
            name: name.to_string(),
            key,
            data: MapData::Verdict,
            flags: SetFlags {
                interval,
                ..SetFlags::default()
            },
            elements: elements
                .into_iter()
                .map(|(k, v)| (k, Data::Verdict(v)))
                .collect(),
        }
    }
}

/// A rule: expressions evaluated left to right, and an optional comment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Rule {
    /// The expressions.
    pub exprs: Vec<Expr>,
    /// `comment "..."` (at most 128 bytes).
    pub comment: Option<String>,
}

impl Rule {
    /// A rule without comment.
    pub fn new(exprs: Vec<Expr>) -> Rule {
        Rule {
            exprs,
            comment: None,
        }
    }

    /// Rules that send a packet to one of `targets` at random, evenly, without
    /// sets: `numgen random mod N 0 T0`, `numgen random mod N-1 0 T1`, ...,
    /// then `T(N-1)` (see [`Expr::NumgenIs`]).
    pub fn numgen_cascade(targets: &[Verdict]) -> Vec<Rule> {
        let n = targets.len();
        targets
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let left = (n - i) as u32;
                if left > 1 {
                    Rule::new(vec![
                        Expr::NumgenIs {
                            modulus: left,
                            value: 0,
                        },
                        Expr::Verdict(t.clone()),
                    ])
                } else {
                    Rule::new(vec![Expr::Verdict(t.clone())])
                }
            })
            .collect()
    }

    /// The same rule with a comment.
    pub fn with_comment(mut self, comment: &str) -> Rule {
        self.comment = Some(comment.to_string());
        self
    }
}
