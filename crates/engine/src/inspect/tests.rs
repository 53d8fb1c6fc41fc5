use super::*;

fn workload(command: &[&str]) -> Workload {
    Workload {
        name: "web".into(),
        id: "ab".repeat(32),
        node: "master".into(),
        network: "blue".into(),
        ip: Some("10.244.0.5".parse().expect("ip")),
        host_iface: "cali0123456789a".into(),
        labels: [("app".to_string(), "web".to_string())].into(),
        image: "toolbox".into(),
        command: command.iter().map(|s| s.to_string()).collect(),
        net_of: None,
        created: 1_700_000_000,
    }
}

fn runtime(status: weft_runtime::Status, pid: i32) -> weft_runtime::State {
    serde_json::from_value(json!({
        "id": "ab", "status": status, "pid": pid, "shim_pid": pid,
        "bundle": "/b", "exit_code": if status == weft_runtime::Status::Stopped { json!(137) } else { json!(null) },
        "created": "2024-01-02T03:04:05.000000006Z",
        "started": "2024-01-02T03:04:06.000000000Z",
        "finished": if status == weft_runtime::Status::Stopped { json!("2024-01-02T03:05:00.000000000Z") } else { json!(null) },
        "oom_killed": status == weft_runtime::Status::Stopped,
        "error": null
    }))
    .expect("state")
}

/// A config.json as the runtime's bundle writes it, trimmed to what inspect reads.
fn config() -> Value {
    let mut bounding: Vec<String> = weft_runtime::default_capabilities()
        .iter()
        .filter(|c| **c != "NET_RAW")
        .map(|c| format!("CAP_{c}"))
        .collect();
    bounding.push("CAP_NET_ADMIN".into());
    json!({
        "hostname": "web-host",
        "root": {"path": "rootfs", "readonly": true},
        "process": {
            "args": ["/entry.sh", "httpd", "-p", "80"],
            "env": ["PATH=/bin", "A=1"],
            "cwd": "/srv",
            "user": {"uid": 1000, "gid": 1000},
            "noNewPrivileges": true,
            "capabilities": {"bounding": bounding},
        },
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "ro", "rprivate"]},
        ],
        "linux": {"resources": {
            "memory": {"limit": 67108864},
            "cpu": {"quota": 50000, "period": 100000},
            "pids": {"limit": 64},
        }},
        "annotations": {"io.weft.restart": "on-failure:3"},
    })
}

#[test]
fn docker_shape_of_a_running_container() {
    let w = workload(&[]);
    // The test process itself stands in for a live init.
    let rt = runtime(weft_runtime::Status::Running, std::process::id() as i32);
    let cfg = config();
    let v = shape(&Inputs {
        workload: &w,
        network: None,
        runtime: Some(&rt),
        config: Some(&cfg),
        image_entrypoint: vec!["/entry.sh".into()],
        live: LiveNet {
            mac: Some("ee:ee:ee:00:00:01".into()),
            prefix_len: Some(32),
            gateway: Some(Ipv4Addr::new(169, 254, 1, 1)),
        },
        net_of: None,
    });
    for k in [
        "Id",
        "Created",
        "State",
        "Image",
        "Name",
        "Mounts",
        "Config",
        "HostConfig",
        "NetworkSettings",
    ] {
        assert!(v.get(k).is_some(), "no {k} in {v:#}");
    }
    assert_eq!(v["Name"], "/web");
    assert_eq!(v["Id"], w.id.as_str());
    let st = &v["State"];
    assert_eq!(st["Status"], "running");
    assert_eq!(st["Running"], true);
    assert_eq!(st["Pid"], std::process::id());
    assert_eq!(st["ExitCode"], 0);
    assert_eq!(st["FinishedAt"], ZERO_TIME);
    for k in ["Paused", "Restarting", "OOMKilled", "Dead"] {
        assert_eq!(st[k], false, "{k}");
    }
    let net = &v["NetworkSettings"]["Networks"]["blue"];
    assert_eq!(net["IPAddress"], "10.244.0.5");
    assert_eq!(net["IPPrefixLen"], 32);
    assert_eq!(net["Gateway"], "169.254.1.1");
    assert_eq!(net["MacAddress"], "ee:ee:ee:00:00:01");
    assert_eq!(net["EndpointID"], "cali0123456789a");
    assert_eq!(
        v["NetworkSettings"]["SandboxKey"],
        format!("/proc/{}/ns/net", std::process::id())
    );
    let c = &v["Config"];
    assert_eq!(c["Hostname"], "web-host");
    assert_eq!(c["Entrypoint"], json!(["/entry.sh"]));
    assert_eq!(c["Cmd"], json!(["httpd", "-p", "80"]));
    assert_eq!(c["Env"], json!(["PATH=/bin", "A=1"]));
    assert_eq!(c["WorkingDir"], "/srv");
    assert_eq!(c["User"], "1000:1000");
    assert_eq!(c["Image"], "toolbox");
    assert_eq!(c["Labels"]["app"], "web");
    let h = &v["HostConfig"];
    assert_eq!(h["Memory"], 67108864);
    assert_eq!(h["NanoCpus"], 500_000_000);
    assert_eq!(h["PidsLimit"], 64);
    assert_eq!(
        h["RestartPolicy"],
        json!({"Name": "on-failure", "MaximumRetryCount": 3})
    );
    assert_eq!(h["Privileged"], false);
    assert_eq!(h["ReadonlyRootfs"], true);
    assert_eq!(h["CapAdd"], json!(["NET_ADMIN"]));
    assert_eq!(h["CapDrop"], json!(["NET_RAW"]));
    assert_eq!(
        v["Mounts"],
        json!([{"Type": "bind", "Source": "/srv/data", "Destination": "/data", "Mode": "",
                "RW": false, "Propagation": "rprivate"}])
    );
}

#[test]
fn docker_shape_of_an_exited_and_a_lost_container() {
    let w = workload(&["sleep", "1"]);
    let rt = runtime(weft_runtime::Status::Stopped, i32::MAX);
    let v = shape(&Inputs {
        workload: &w,
        network: None,
        runtime: Some(&rt),
        config: None,
        image_entrypoint: vec![],
        live: LiveNet::default(),
        net_of: None,
    });
    let st = &v["State"];
    assert_eq!(st["Status"], "exited");
    assert_eq!(
        (st["Running"].clone(), st["Pid"].clone()),
        (json!(false), json!(0))
    );
    assert_eq!(st["ExitCode"], 137);
    assert_eq!(st["OOMKilled"], true);
    assert_eq!(st["FinishedAt"], "2024-01-02T03:05:00.000000000Z");
    assert_eq!(v["Config"]["Cmd"], json!(["sleep", "1"]));
    assert_eq!(v["Config"]["Entrypoint"], Value::Null);
    assert_eq!(v["NetworkSettings"]["SandboxKey"], "");
    // Without live data, a routed container's prefix and gateway are known.
    let net = &v["NetworkSettings"]["Networks"]["blue"];
    assert_eq!(
        (net["IPPrefixLen"].clone(), net["Gateway"].clone()),
        (json!(32), json!("169.254.1.1"))
    );

    let lost = shape(&Inputs {
        workload: &w,
        network: None,
        runtime: None,
        config: None,
        image_entrypoint: vec![],
        live: LiveNet::default(),
        net_of: Some("pod".into()),
    });
    assert_eq!(lost["State"]["Status"], "dead");
    assert_eq!(lost["State"]["Dead"], true);
    assert_eq!(lost["Created"], "2023-11-14T22:13:20.000000000Z");
    assert_eq!(lost["HostConfig"]["NetworkMode"], "container:pod");
}

#[test]
fn templates() {
    let v = json!({"State": {"Pid": 42, "Status": "running"}, "Config": {"Labels": {"b": "2", "a": "1"}, "Cmd": ["sh", "-c"]}, "Name": "/web"});
    assert_eq!(render_template(&v, "{{.State.Pid}}").expect("pid"), "42");
    assert_eq!(
        render_template(&v, "{{.Name}} is {{ .State.Status }}\n").expect("text"),
        "/web is running\n"
    );
    assert_eq!(
        render_template(&v, "{{json .Config.Labels}}").expect("json"),
        r#"{"a":"1","b":"2"}"#
    );
    assert_eq!(
        render_template(&v, "{{.Config.Labels}}").expect("map"),
        "map[a:1 b:2]"
    );
    assert_eq!(
        render_template(&v, "{{.Config.Cmd}}").expect("list"),
        "[sh -c]"
    );
    assert_eq!(
        render_template(&v, "{{.State.Nope}}").expect("missing"),
        "<no value>"
    );
    assert!(render_template(&v, "{{.State.Pid.X}}").is_err());
    assert!(render_template(&v, "{{.State").is_err());
    let e = render_template(&v, "{{range .Config.Cmd}}{{.}}{{end}}").expect_err("range");
    assert!(e.to_string().contains("beyond"), "{e}");
}
