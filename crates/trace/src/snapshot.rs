//! What one network namespace holds, read once per trace: links, addresses, routes (main and
//! local tables), neighbours, bridge fdb, and the sysctls that decide forwarding, proxy ARP and
//! reverse path filtering.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::{Context, Result};
use weft_netlink::{
    Address, FdbEntry, Handle, Link, Neighbour, Netns, Route, RouteKind, TABLE_LOCAL, TABLE_MAIN,
};

/// One namespace's state. Built from the kernel by [`NsSnapshot::read`], or by hand in tests.
#[derive(Clone, Debug, Default)]
pub struct NsSnapshot {
    pub links: Vec<Link>,
    pub addrs: Vec<Address>,
    /// Main table.
    pub main: Vec<Route>,
    /// Local table.
    pub local: Vec<Route>,
    pub neighbours: Vec<Neighbour>,
    pub fdb: Vec<FdbEntry>,
    /// Sysctls under `/proc/sys/net/ipv4/`, keyed like `ip_forward` or `conf/eth0/forwarding`.
    pub sysctls: BTreeMap<String, String>,
}

/// The per-interface sysctls the simulation reads.
const CONF_KEYS: [&str; 4] = ["forwarding", "proxy_arp", "rp_filter", "arp_ignore"];

impl NsSnapshot {
    /// Reads the whole state of `ns` (one netlink socket, one thread for the sysctls).
    pub fn read(ns: &Netns) -> Result<NsSnapshot> {
        let mut h = Handle::in_netns(ns).with_context(|| format!("open netlink in {ns}"))?;
        let links = h.links().with_context(|| format!("list links of {ns}"))?;
        let addrs = h
            .addresses(None)
            .with_context(|| format!("list addresses of {ns}"))?;
        let main = h
            .routes(TABLE_MAIN)
            .with_context(|| format!("list routes of {ns}"))?;
        let local = h
            .routes(TABLE_LOCAL)
            .with_context(|| format!("list local routes of {ns}"))?;
        let neighbours = h
            .neighbours(None)
            .with_context(|| format!("list neighbours of {ns}"))?;
        let fdb = if links
            .iter()
            .any(|l| matches!(l.kind.as_deref(), Some("bridge" | "vxlan")))
        {
            h.fdb(None).with_context(|| format!("list fdb of {ns}"))?
        } else {
            Vec::new()
        };
        let mut keys = vec!["ip_forward".to_string()];
        for dev in std::iter::once("all").chain(links.iter().map(|l| l.name.as_str())) {
            for k in CONF_KEYS {
                keys.push(format!("conf/{dev}/{k}"));
            }
        }
        let values = weft_netlink::run_in_netns(ns, || {
            keys.iter()
                .filter_map(|k| {
                    std::fs::read_to_string(format!("/proc/sys/net/ipv4/{k}"))
                        .ok()
                        .map(|v| (k.clone(), v.trim().to_string()))
                })
                .collect::<BTreeMap<_, _>>()
        })
        .with_context(|| format!("read sysctls of {ns}"))?;
        Ok(NsSnapshot {
            links,
            addrs,
            main,
            local,
            neighbours,
            fdb,
            sysctls: values,
        })
    }

    /// The link with this index.
    pub fn link(&self, index: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.index == index)
    }

    /// The link with this name.
    pub fn link_by_name(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    /// Name of the link with this index, or `ifN`.
    pub fn link_name(&self, index: u32) -> String {
        self.link(index)
            .map(|l| l.name.clone())
            .unwrap_or_else(|| format!("if{index}"))
    }

    /// The local-table entry that makes `ip` an address of this namespace.
    pub fn local_route(&self, ip: Ipv4Addr) -> Option<&Route> {
        self.local
            .iter()
            .filter(|r| r.kind == RouteKind::Local && r.dst.contains(&ip))
            .max_by_key(|r| r.dst.prefix_len())
    }

    /// True when `ip` is an address of this namespace (local table, or an address when the
    /// snapshot was made by hand without a local table).
    pub fn is_local(&self, ip: Ipv4Addr) -> bool {
        self.local_route(ip).is_some() || self.addrs.iter().any(|a| a.addr.addr() == ip)
    }

    /// True when `ip` is configured on the link `index` itself.
    pub fn has_addr_on(&self, index: u32, ip: Ipv4Addr) -> bool {
        self.addrs
            .iter()
            .any(|a| a.index == index && a.addr.addr() == ip)
    }

    fn sysctl_num(&self, key: &str) -> Option<u8> {
        self.sysctls.get(key).and_then(|v| v.parse().ok())
    }

    /// `net.ipv4.ip_forward`.
    pub fn ip_forward(&self) -> Option<bool> {
        self.sysctl_num("ip_forward").map(|v| v != 0)
    }

    /// Whether the interface forwards (`conf.IF.forwarding`); unknown counts as on when
    /// `ip_forward` is on.
    pub fn forwarding(&self, iface: &str) -> Option<bool> {
        self.sysctl_num(&format!("conf/{iface}/forwarding"))
            .map(|v| v != 0)
            .or_else(|| self.ip_forward())
    }

    /// Effective proxy ARP of an interface (`all` OR the interface).
    pub fn proxy_arp(&self, iface: &str) -> bool {
        self.sysctl_num("conf/all/proxy_arp").unwrap_or(0) != 0
            || self
                .sysctl_num(&format!("conf/{iface}/proxy_arp"))
                .unwrap_or(0)
                != 0
    }

    /// Effective reverse path filter mode of an interface (the larger of `all` and the
    /// interface): 0 off, 1 strict, 2 loose.
    pub fn rp_filter(&self, iface: &str) -> u8 {
        let all = self.sysctl_num("conf/all/rp_filter").unwrap_or(0);
        let dev = self
            .sysctl_num(&format!("conf/{iface}/rp_filter"))
            .unwrap_or(0);
        all.max(dev)
    }

    /// Effective `arp_ignore` of an interface.
    pub fn arp_ignore(&self, iface: &str) -> u8 {
        let all = self.sysctl_num("conf/all/arp_ignore").unwrap_or(0);
        let dev = self
            .sysctl_num(&format!("conf/{iface}/arp_ignore"))
            .unwrap_or(0);
        all.max(dev)
    }

    /// Ports of the bridge `bridge` (links enslaved to it).
    pub fn bridge_ports(&self, bridge: u32) -> impl Iterator<Item = &Link> {
        self.links
            .iter()
            .filter(move |l| l.master == Some(bridge) && l.index != bridge)
    }

    /// The neighbour entry for `ip` on `index`.
    pub fn neighbour(&self, index: u32, ip: Ipv4Addr) -> Option<&Neighbour> {
        self.neighbours
            .iter()
            .find(|n| n.index == index && n.ip == ip)
    }
}

/// Whether a link is a loopback device.
pub fn is_loopback(l: &Link) -> bool {
    l.name == "lo" || l.index == weft_netlink::LOOPBACK_INDEX && l.kind.is_none()
}

/// The kind of a link for display.
pub fn link_kind(l: &Link) -> String {
    if is_loopback(l) {
        return "loopback".into();
    }
    l.kind.clone().unwrap_or_else(|| "device".into())
}
