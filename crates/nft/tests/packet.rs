//! A real packet through a table applied by the netlink backend: two network
//! namespaces joined by a veth pair; ICMP echo from one to the other, first
//! answered, then dropped by a rule whose counter `nft` shows.

mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use common::*;
use weft_netlink::{run_in_netns, Handle, VethSpec};
use weft_nft::*;

const CLIENT: [u8; 4] = [10, 99, 0, 1];
const SERVER: [u8; 4] = [10, 99, 0, 2];

/// A raw ICMP socket opened inside `ns` (it stays bound to that namespace).
fn icmp_socket(ns: &TestNs) -> OwnedFd {
    run_in_netns(&ns.ns, || {
        // SAFETY: plain socket(2); the result is checked.
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_ICMP,
            )
        };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        // SAFETY: fd is a fresh descriptor we own.
        unsafe { OwnedFd::from_raw_fd(fd) }
    })
    .unwrap_or_else(|e| panic!("{e}"))
}

fn checksum(b: &[u8]) -> u16 {
    let mut sum: u32 = b
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Sends one echo request to SERVER; true when the reply comes back in time.
fn ping(sock: &OwnedFd, seq: u16) -> bool {
    let id: u16 = (std::process::id() & 0xffff) as u16;
    let mut pkt = vec![8u8, 0, 0, 0];
    pkt.extend_from_slice(&id.to_be_bytes());
    pkt.extend_from_slice(&seq.to_be_bytes());
    pkt.extend_from_slice(b"weft-nft");
    let c = checksum(&pkt);
    pkt[2..4].copy_from_slice(&c.to_be_bytes());
    // SAFETY: an all-zero sockaddr_in is valid; fields are set below.
    let mut to: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    to.sin_family = libc::AF_INET as u16;
    to.sin_addr.s_addr = u32::from_ne_bytes(SERVER);
    // SAFETY: pkt and to are valid for their lengths.
    let n = unsafe {
        libc::sendto(
            sock.as_raw_fd(),
            pkt.as_ptr() as *const libc::c_void,
            pkt.len(),
            0,
            &to as *const libc::sockaddr_in as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        )
    };
    assert_eq!(
        n as usize,
        pkt.len(),
        "sendto: {}",
        std::io::Error::last_os_error()
    );
    let deadline = std::time::Instant::now() + Duration::from_millis(1500);
    let mut buf = [0u8; 1500];
    while std::time::Instant::now() < deadline {
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe {
            libc::recv(
                sock.as_raw_fd(),
                buf.as_mut_ptr() as *mut libc::c_void,
                buf.len(),
                0,
            )
        };
        if n <= 0 {
            continue;
        }
        let ihl = usize::from(buf[0] & 0x0f) * 4;
        let icmp = &buf[ihl..n as usize];
        if icmp.len() >= 8
            && icmp[0] == 0
            && icmp[4..6] == id.to_be_bytes()
            && icmp[6..8] == seq.to_be_bytes()
        {
            return true;
        }
    }
    false
}

fn set_timeout(sock: &OwnedFd) {
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: tv is a valid timeval for SO_RCVTIMEO.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            &tv as *const libc::timeval as *const libc::c_void,
            std::mem::size_of::<libc::timeval>() as u32,
        )
    };
    assert_eq!(r, 0);
}

fn server_table(verdict: Expr) -> Table {
    let mut t = Table::new("weft");
    t.chains.push(Chain::base(
        "in",
        BaseChain::filter(Hook::Input, 0, Policy::Accept),
        vec![Rule::new(vec![
            Expr::ip_daddr(std::net::Ipv4Addr::from(SERVER)),
            Expr::icmp_type(8),
            Expr::counter(),
            verdict,
        ])],
    ));
    t
}

#[test]
fn a_rule_drops_icmp_and_counts_it() {
    if !root_with_nft_or_skip("a_rule_drops_icmp_and_counts_it") {
        return;
    }
    let (client, server) = (TestNs::new(), TestNs::new());
    let mut h = Handle::in_netns(&client.ns).unwrap_or_else(|e| panic!("{e}"));
    let link = h
        .create_veth_with(&VethSpec::new("c0", "s0").peer_ns(&server.ns).up().peer_up())
        .unwrap_or_else(|e| panic!("{e}"));
    h.add_address(
        link.index,
        format!("{}/24", std::net::Ipv4Addr::from(CLIENT))
            .parse()
            .expect("net"),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mut hs = Handle::in_netns(&server.ns).unwrap_or_else(|e| panic!("{e}"));
    let peer = hs
        .link_by_name("s0")
        .unwrap_or_else(|e| panic!("{e}"))
        .expect("peer s0");
    hs.add_address(
        peer.index,
        format!("{}/24", std::net::Ipv4Addr::from(SERVER))
            .parse()
            .expect("net"),
    )
    .unwrap_or_else(|e| panic!("{e}"));

    let sock = icmp_socket(&client);
    set_timeout(&sock);
    let mut nl = NetlinkBackend::in_netns(&server.ns).unwrap_or_else(|e| panic!("{e}"));

    nl.apply(&server_table(Expr::accept()))
        .unwrap_or_else(|e| panic!("{e}"));
    // The first packet may wait for ARP; allow a few tries.
    assert!(
        (1..=3).any(|s| ping(&sock, s)),
        "echo must be answered while accepted"
    );

    nl.apply(&server_table(Expr::drop()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!ping(&sock, 10), "echo must be dropped");
    assert!(!ping(&sock, 11), "echo must be dropped");
    let listing = server.nft(&["list", "table", "inet", "weft"]);
    assert!(
        listing
            .contains("ip daddr 10.99.0.2 icmp type echo-request counter packets 2 bytes 72 drop"),
        "{listing}"
    );
}
