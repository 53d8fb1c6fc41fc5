//! Helpers of the root-only integration tests: skip unless root with `nft`
//! installed, unique namespace names, namespaces deleted on drop (also on
//! panic), and `nft` run only inside a test namespace (`ip netns exec`).

#![allow(dead_code)]

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use weft_netlink::Netns;

/// True when the test can run: root, and `nft` and `ip` are installed.
pub fn root_with_nft_or_skip(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipping {test}: needs root");
        return false;
    }
    // Looked up, not run: nothing here touches the machine's own namespace.
    let path = std::env::var("PATH").unwrap_or_default();
    for prog in ["nft", "ip"] {
        let found = path
            .split(':')
            .chain(["/usr/sbin", "/sbin"])
            .any(|dir| std::path::Path::new(dir).join(prog).is_file());
        if !found {
            eprintln!("skipping {test}: `{prog}` is not installed");
            return false;
        }
    }
    true
}

/// A name unique to this process and call: `weft-t<pid>-nft-<n>`.
pub fn unique() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("weft-t{}-nft-{n}", std::process::id())
}

/// A named network namespace, deleted when dropped.
pub struct TestNs {
    pub name: String,
    pub ns: Netns,
}

impl TestNs {
    pub fn new() -> TestNs {
        let name = unique();
        let ns = Netns::create_named(&name).unwrap_or_else(|e| panic!("{e}"));
        TestNs { name, ns }
    }

    /// Runs `nft ARGS` inside the namespace; stdout, or the failure.
    pub fn nft_try(&self, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
        use std::io::Write;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name, "nft"]).args(args);
        cmd.stdin(if stdin.is_some() {
            std::process::Stdio::piped()
        } else {
            std::process::Stdio::null()
        });
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| format!("run ip netns exec: {e}"))?;
        if let (Some(text), Some(mut input)) = (stdin, child.stdin.take()) {
            input
                .write_all(text.as_bytes())
                .map_err(|e| format!("write nft input: {e}"))?;
        }
        let out = child
            .wait_with_output()
            .map_err(|e| format!("wait for nft: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// Runs `nft ARGS` inside the namespace and returns stdout; panics on failure.
    pub fn nft(&self, args: &[&str]) -> String {
        self.nft_try(args, None)
            .unwrap_or_else(|e| panic!("nft {} in {}: {e}", args.join(" "), self.name))
    }

    /// `nft -s list table inet NAME` (counters without values).
    pub fn list(&self, table: &str) -> String {
        self.nft(&["-s", "list", "table", "inet", table])
    }
}

impl Drop for TestNs {
    fn drop(&mut self) {
        if let Err(e) = Netns::delete_named(&self.name) {
            eprintln!("cleanup of netns {}: {e}", self.name);
        }
    }
}

/// The rule lines of an `nft list` output (trimmed), in order.
pub fn rule_lines(listing: &str) -> Vec<String> {
    listing
        .lines()
        .map(str::trim)
        .filter(|l| {
            !l.is_empty()
                && !l.starts_with("table ")
                && !l.starts_with("chain ")
                && !l.starts_with("set ")
                && !l.starts_with("map ")
                && !l.starts_with("type ")
                && !l.starts_with("flags ")
                && !l.starts_with("elements ")
                && *l != "}"
        })
        .map(str::to_string)
        .collect()
}

use weft_nft::*;

fn ip(s: &str) -> std::net::Ipv4Addr {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn net(s: &str) -> Value {
    Value::Ipv4Prefix(s.parse().unwrap_or_else(|e| panic!("{s}: {e}")))
}

/// A table using every kind of chain, set, map and expression weft needs.
pub fn full_table(name: &str) -> Table {
    let mut t = Table::new(name);
    t.sets.push(Set::new(
        "trusted",
        KeyType::Ipv4Addr,
        vec![
            net("10.244.0.0/24"),
            Value::Ipv4(ip("192.168.1.1")),
            Value::Ipv4Range(ip("172.16.0.1"), ip("172.16.0.9")),
        ],
    ));
    t.maps.push(Map::verdicts(
        "from-wl",
        KeyType::Ifname,
        vec![(
            Value::Ifname("cali1".into()),
            Verdict::Jump("from-wl-cali1".into()),
        )],
    ));
    t.maps.push(Map::verdicts(
        "to-wl",
        KeyType::Ifname,
        vec![(
            Value::Ifname("cali1".into()),
            Verdict::Jump("to-wl-cali1".into()),
        )],
    ));
    t.maps.push(Map::verdicts(
        "services",
        KeyType::Concat(vec![
            KeyType::Ipv4Addr,
            KeyType::InetProto,
            KeyType::InetService,
        ]),
        vec![(
            Value::Concat(vec![
                Value::Ipv4(ip("10.96.0.10")),
                Value::Proto(PROTO_TCP),
                Value::Port(80),
            ]),
            Verdict::Goto("svc-web".into()),
        )],
    ));
    let svc_key = [Field::IpDaddr, Field::L4Proto, Field::ThDport];
    t.chains = vec![
        Chain::base(
            "filter-fwd",
            BaseChain::filter(Hook::Forward, 0, Policy::Accept),
            vec![
                Rule::new(vec![
                    Expr::ct_state(CtStates::ESTABLISHED | CtStates::RELATED),
                    Expr::accept(),
                ]),
                Rule::new(vec![Expr::ct_state(CtStates::INVALID), Expr::drop()]),
                Rule::new(vec![Expr::vmap(&[Field::Iifname], "from-wl")]),
                Rule::new(vec![Expr::vmap(&[Field::Oifname], "to-wl")]),
                Rule::new(vec![
                    Expr::in_set(&[Field::IpSaddr], "trusted"),
                    Expr::counter(),
                    Expr::accept(),
                ]),
                Rule::new(vec![Expr::iifname("cali*"), Expr::counter(), Expr::drop()])
                    .with_comment("unknown workload interface"),
            ],
        ),
        Chain::base(
            "filter-in",
            BaseChain::filter(Hook::Input, 0, Policy::Accept),
            vec![
                Rule::new(vec![
                    Expr::Lookup {
                        key: vec![Field::TcpDport],
                        negate: false,
                        set: SetRef::Anonymous(vec![Value::Port(80), Value::Port(22)]),
                    },
                    Expr::counter(),
                    Expr::accept(),
                ]),
                Rule::new(vec![Expr::udp_dport(53), Expr::accept()]),
                Rule::new(vec![Expr::icmp_type(8), Expr::accept()]),
                Rule::new(vec![
                    Expr::log("weft-in: "),
                    Expr::Reject(Reject::PortUnreachable),
                ]),
            ],
        ),
        Chain::base(
            "filter-out",
            BaseChain::filter(Hook::Output, 5, Policy::Accept),
            vec![
                Rule::new(vec![Expr::tcp_dport(9), Expr::Reject(Reject::TcpReset)]),
                Rule::new(vec![Expr::Reject(Reject::TcpReset)]),
                Rule::new(vec![
                    Expr::ip_daddr(net("203.0.113.0/24")),
                    Expr::Reject(Reject::IcmpAdminProhibited),
                ]),
            ],
        ),
        Chain::base(
            "nat-pre",
            BaseChain::nat(Hook::Prerouting, -100),
            vec![Rule::new(vec![Expr::vmap(&svc_key, "services")])],
        ),
        Chain::base(
            "nat-post",
            BaseChain::nat(Hook::Postrouting, 100),
            vec![
                Rule::new(vec![
                    Expr::MarkMasked {
                        mask: 0x4000,
                        op: CmpOp::Eq,
                        value: 0x4000,
                    },
                    Expr::masquerade(),
                ]),
                Rule::new(vec![
                    Expr::oifname("eth0"),
                    Expr::ip_saddr(net("10.244.0.0/16")),
                    Expr::ne(Field::IpDaddr, net("10.244.0.0/16")),
                    Expr::Masquerade { fully_random: true },
                ]),
            ],
        ),
        Chain::regular(
            "from-wl-cali1",
            vec![
                Rule::new(vec![
                    Expr::ne(Field::IpSaddr, Value::Ipv4(ip("10.244.0.5"))),
                    Expr::drop(),
                ])
                .with_comment("anti-spoofing"),
                Rule::new(vec![Expr::SetMark(MarkSet::Or(0x100))]),
                Rule::new(vec![Expr::jump("pol-a")]),
                Rule::new(vec![Expr::ret()]),
            ],
        ),
        Chain::regular(
            "to-wl-cali1",
            vec![
                Rule::new(vec![
                    Expr::in_set(&[Field::IpSaddr], "trusted"),
                    Expr::accept(),
                ]),
                Rule::new(vec![Expr::Verdict(Verdict::Drop)]),
            ],
        ),
        Chain::regular(
            "pol-a",
            vec![Rule::new(vec![
                Expr::Match {
                    field: Field::TcpDport,
                    op: CmpOp::Eq,
                    value: Value::PortRange(8080, 8090),
                },
                Expr::accept(),
            ])
            .with_comment("policy a")],
        ),
        Chain::regular(
            "svc-web",
            vec![Rule::new(vec![Expr::NumgenVmap {
                targets: vec![
                    Verdict::Goto("svc-web-ep0".into()),
                    Verdict::Goto("svc-web-ep1".into()),
                ],
            }])],
        ),
        Chain::regular(
            "svc-web-ep0",
            vec![
                Rule::new(vec![Expr::SetMark(MarkSet::Or(0x4000))]),
                Rule::new(vec![
                    Expr::l4proto(PROTO_TCP),
                    Expr::dnat(ip("10.244.0.5"), Some(8080)),
                ]),
            ],
        ),
        Chain::regular(
            "svc-web-ep1",
            vec![Rule::new(vec![
                Expr::l4proto(PROTO_TCP),
                Expr::dnat(ip("10.244.0.6"), Some(8080)),
            ])],
        ),
    ];
    t
}

/// The rules of each chain in an `nft list table` output, by chain name.
pub fn chains_of(listing: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut out = std::collections::BTreeMap::new();
    let mut cur: Option<String> = None;
    for line in listing.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("chain ") {
            let name = rest.trim_end_matches('{').trim().to_string();
            out.insert(name.clone(), Vec::new());
            cur = Some(name);
        } else if line == "}" {
            cur = None;
        } else if let Some(c) = &cur {
            if !line.starts_with("type ") && !line.is_empty() {
                out.entry(c.clone())
                    .or_insert_with(Vec::new)
                    .push(line.to_string());
            }
        }
    }
    out
}

/// The rules of each chain of the model, printed by its `Display`.
pub fn model_chains(t: &Table) -> std::collections::BTreeMap<String, Vec<String>> {
    t.chains
        .iter()
        .map(|c| {
            (
                c.name.clone(),
                c.rules.iter().map(|r| r.to_string()).collect(),
            )
        })
        .collect()
}
