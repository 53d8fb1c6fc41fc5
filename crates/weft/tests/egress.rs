//! S17: egress to the outside is masqueraded to the node; never between cluster addresses.

mod common;

use std::process::{Child, Stdio};
use std::time::Duration;

use common::{can_run, wait_until, Lab};

/// A server in a lab member's namespace (through `weft lab exec`, so it has the member's
/// hostname); stopped on drop, and `lab down` ends anything left in the lab.
struct Server(Child);

impl Server {
    fn start(lab: &Lab, member: &str, port: &str) -> Server {
        let child = common::weft_cmd()
            .args(["--lab", &lab.name, "lab", "exec", member, "--"])
            .args([env!("CARGO_BIN_EXE_weft"), "tool", "httpd", "-p", port])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start httpd");
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn s17_egress_is_masqueraded_to_the_node() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["master", "slave1"]);
    lab.ok(&["network", "create", "net1"]);
    lab.ok(&["network", "create", "closed", "--no-nat-outgoing"]);
    lab.run("master", "web1", "net1");
    lab.run("slave1", "b-web1", "net1");
    lab.run("master", "c1", "closed");
    let _internet = Server::start(&lab, "gw", "80");
    let url = "http://203.0.113.1/";
    let mut body = String::new();
    assert!(
        wait_until(Duration::from_secs(10), || {
            let r = lab.weft(&["exec", "web1", "wget", "-qO-", "-T", "2", url]);
            let ok = r.ok();
            body = r.stdout;
            ok
        }),
        "web1 never reached the outside"
    );
    let mut lines = body.lines();
    assert_eq!(lines.next(), Some("gw"));
    assert!(
        lines
            .next()
            .unwrap_or_default()
            .starts_with("198.51.100.11:"),
        "the outside sees master's address: {body}"
    );
    // No NAT between cluster addresses: b-web1 sees web1's own address.
    let seen = lab.ok(&[
        "exec",
        "web1",
        "wget",
        "-qO-",
        "-T",
        "2",
        &format!("http://{}/", lab.ip("b-web1")),
    ]);
    assert!(
        seen.lines()
            .nth(1)
            .unwrap_or_default()
            .starts_with(&format!("{}:", lab.ip("web1"))),
        "{seen}"
    );
    // A network without natOutgoing does not get out (the gateway has no route back).
    assert!(!lab
        .weft(&["exec", "c1", "wget", "-qO-", "-T", "2", url])
        .ok());
}
