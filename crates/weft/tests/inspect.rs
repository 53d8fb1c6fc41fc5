//! `weft inspect` in Docker's shape, on a real container in a lab: State, NetworkSettings
//! (read from the container's namespace), Config, HostConfig, and `--format` templates.

mod common;

use common::{can_run, Lab};

#[test]
fn inspect_in_dockers_shape() {
    if !can_run() {
        return;
    }
    let lab = Lab::up(&["n1"]);
    lab.ok(&["network", "create", "net1"]);
    lab.ok(&[
        "--node",
        "n1",
        "run",
        "-d",
        "--name",
        "web",
        "--net",
        "net1",
        "--label",
        "app=web",
        "-m",
        "64m",
        "--cpus",
        "0.5",
        "--pids-limit",
        "50",
        "--restart",
        "on-failure:2",
        "--cap-drop",
        "NET_RAW",
        "-e",
        "GREETING=hi",
        "toolbox",
        "sleep",
        "600",
    ]);
    let out = lab.ok(&["inspect", "web"]);
    let all: serde_json::Value = serde_json::from_str(&out).expect("inspect is JSON");
    let arr = all.as_array().expect("an array, like docker inspect");
    assert_eq!(arr.len(), 1);
    let v = &arr[0];
    let own = lab.inspect("web"); // weft's own object (-o json) is still there
    assert_eq!(v["Id"], own["id"]);
    assert_eq!(v["Name"], "/web");

    let st = &v["State"];
    assert_eq!(st["Status"], "running");
    assert_eq!(st["Running"], true);
    assert_eq!(st["Pid"], own["pid"]);
    let pid = st["Pid"].as_i64().expect("pid");
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    assert!(st["StartedAt"].as_str().expect("started").starts_with("20"));

    let net = &v["NetworkSettings"]["Networks"]["net1"];
    assert_eq!(net["IPAddress"], own["ip"]);
    assert_eq!(net["IPPrefixLen"], 32);
    assert_eq!(net["Gateway"], "169.254.1.1");
    // The MAC address is the one eth0 has inside the container.
    let link = lab.ok(&["exec", "web", "cat", "/sys/class/net/eth0/address"]);
    assert_eq!(net["MacAddress"], link.trim());
    assert_eq!(net["EndpointID"], own["host_iface"]);
    assert_eq!(
        v["NetworkSettings"]["SandboxKey"],
        format!("/proc/{pid}/ns/net")
    );

    let cfg = &v["Config"];
    assert_eq!(cfg["Hostname"], "web");
    assert_eq!(cfg["Cmd"], serde_json::json!(["sleep", "600"]));
    assert_eq!(cfg["Image"], "toolbox");
    assert_eq!(cfg["Labels"]["app"], "web");
    assert!(cfg["Env"]
        .as_array()
        .expect("env")
        .contains(&"GREETING=hi".into()));

    let h = &v["HostConfig"];
    assert_eq!(h["Memory"], 64 << 20);
    assert_eq!(h["NanoCpus"], 500_000_000);
    assert_eq!(h["PidsLimit"], 50);
    assert_eq!(h["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(h["RestartPolicy"]["MaximumRetryCount"], 2);
    assert_eq!(h["Privileged"], false);
    assert_eq!(h["CapDrop"], serde_json::json!(["NET_RAW"]));

    // --format: paths and json.
    assert_eq!(
        lab.ok(&["inspect", "--format", "{{.State.Pid}}", "web"])
            .trim(),
        pid.to_string()
    );
    assert_eq!(
        lab.ok(&["inspect", "-f", "{{json .Config.Labels}}", "web"])
            .trim(),
        r#"{"app":"web"}"#
    );
    let r = lab.weft(&["inspect", "-f", "{{range .Mounts}}x{{end}}", "web"]);
    assert!(!r.ok());
    assert!(r.stderr.contains("beyond"), "{}", r.stderr);

    // After a stop: exited, with its exit code and times.
    lab.ok(&["stop", "-t", "1", "web"]);
    let v: serde_json::Value =
        serde_json::from_str(&lab.ok(&["inspect", "web"])).expect("inspect JSON");
    let st = &v[0]["State"];
    assert_eq!(st["Status"], "exited");
    assert_eq!(st["Running"], false);
    assert_eq!(st["Pid"], 0);
    // (sleep as PID 1 ignores SIGTERM: the stop ends with SIGKILL.)
    assert!(
        [137, 143].contains(&st["ExitCode"].as_i64().expect("code")),
        "{st}"
    );
    assert_ne!(st["FinishedAt"], "0001-01-01T00:00:00Z");
    lab.ok(&["rm", "web"]);
}
