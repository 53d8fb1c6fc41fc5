//! `weft inspect` in Docker's shape (`docker inspect`): built from what weft stores (the
//! workload record, its network, the runtime's state, the bundle's config.json) and what
//! the container's network namespace holds (MAC address, prefix, gateway); plus the small
//! subset of Go templates that `--format` takes.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use anyhow::{bail, Context, Result};
use serde_json::{json, Map, Value};
use weft_model::{keys, paths, Driver, Network, Workload};
use weft_netlink::{Handle, Netns};

use crate::Cluster;

/// Docker's zero time, for times that never happened.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";
/// The gateway of a routed (Calico-style) container: proxy-ARP on the host end.
const ROUTED_GATEWAY: &str = "169.254.1.1";

/// What the container's network namespace holds about its `eth0`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveNet {
    pub mac: Option<String>,
    pub prefix_len: Option<u8>,
    pub gateway: Option<Ipv4Addr>,
}

/// Everything the shape is built from.
pub struct Inputs<'a> {
    pub workload: &'a Workload,
    pub network: Option<&'a Network>,
    pub runtime: Option<&'a weft_runtime::State>,
    /// The bundle's config.json.
    pub config: Option<&'a Value>,
    /// The image's entrypoint (its command is in `config` when the user gave none).
    pub image_entrypoint: Vec<String>,
    pub live: LiveNet,
    /// The name of the container whose network this one shares (`--net container:NAME`).
    pub net_of: Option<String>,
}

/// `weft inspect NAME...`: one Docker-shaped object per container.
pub fn inspect_docker(c: &Cluster, names: &[String]) -> Result<Vec<Value>> {
    names.iter().map(|n| inspect_one(c, n)).collect()
}

fn inspect_one(c: &Cluster, name: &str) -> Result<Value> {
    let store = c.store.as_ref();
    let (w, _) = weft_store::get_json::<Workload>(store, &keys::workload(name))?
        .with_context(|| format!("no such container: {name} (see `weft ps -a`)"))?;
    let network = crate::inspect_network(c, &w.network).ok();
    let rt = weft_runtime::state(&paths::runtime_root(&c.lab, &w.node), &w.id).ok();
    let config_path = paths::bundles_dir(&c.lab, &w.node)
        .join(&w.id)
        .join("config.json");
    let config: Option<Value> = std::fs::read(&config_path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    let image_entrypoint = if w.command.is_empty() {
        weft_image::ImageStore::open(&paths::images_root())
            .ok()
            .and_then(|s| s.get(&w.image).ok().flatten())
            .map(|i| i.config.entrypoint)
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let live = match &rt {
        Some(s) if s.status != weft_runtime::Status::Stopped && s.pid_alive() => {
            live_net(s.pid).unwrap_or_default()
        }
        _ => LiveNet::default(),
    };
    Ok(shape(&Inputs {
        workload: &w,
        network: network.as_ref(),
        runtime: rt.as_ref(),
        config: config.as_ref(),
        image_entrypoint,
        live,
        net_of: w.net_of.clone(),
    }))
}

/// Reads `eth0` of the network namespace of `pid`.
fn live_net(pid: i32) -> Result<LiveNet> {
    let ns = Netns::from_pid(pid)?;
    let mut h = Handle::in_netns(&ns)?;
    let Some(link) = h.link_by_name("eth0")? else {
        return Ok(LiveNet::default());
    };
    let prefix_len = h
        .addresses(Some(link.index))?
        .first()
        .map(|a| a.addr.prefix_len());
    let gateway = h
        .routes(254)?
        .iter()
        .find(|r| r.dst.prefix_len() == 0)
        .and_then(|r| r.gateway);
    Ok(LiveNet {
        mac: link.mac.as_ref().map(weft_netlink::format_mac),
        prefix_len,
        gateway,
    })
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The Docker-shaped object of one container.
pub fn shape(i: &Inputs<'_>) -> Value {
    let w = i.workload;
    let cfg = i.config.unwrap_or(&Value::Null);
    let process = &cfg["process"];
    let rt = i.runtime;
    let alive = rt.is_some_and(|s| s.pid_alive());

    let (status, running, restarting, dead) = match rt {
        None => ("dead", false, false, true),
        Some(s) => match s.status {
            weft_runtime::Status::Created => ("created", false, false, false),
            // Between two runs of a restart policy, the shim holds the container.
            weft_runtime::Status::Running if !alive => ("restarting", true, true, false),
            weft_runtime::Status::Running => ("running", true, false, false),
            weft_runtime::Status::Stopped => ("exited", false, false, false),
        },
    };
    let state = json!({
        "Status": status,
        "Running": running,
        "Paused": false,
        "Restarting": restarting,
        "OOMKilled": rt.is_some_and(|s| s.oom_killed),
        "Dead": dead,
        "Pid": rt.filter(|_| running && alive).map_or(0, |s| s.pid),
        "ExitCode": rt.and_then(|s| s.exit_code).unwrap_or(0),
        "Error": rt.and_then(|s| s.error.clone()).unwrap_or_default(),
        "StartedAt": rt.and_then(|s| s.started.clone()).unwrap_or_else(|| ZERO_TIME.into()),
        "FinishedAt": rt.and_then(|s| s.finished.clone()).unwrap_or_else(|| ZERO_TIME.into()),
    });

    let routed = i.network.is_none_or(|n| n.driver == Driver::Routed);
    let prefix = i.live.prefix_len.unwrap_or(if routed {
        32
    } else {
        i.network
            .and_then(|n| n.subnet)
            .map_or(0, |s| s.prefix_len())
    });
    let gateway = match (i.live.gateway, routed) {
        (Some(g), _) => g.to_string(),
        (None, true) => ROUTED_GATEWAY.to_string(),
        (None, false) => String::new(),
    };
    let mut networks = Map::new();
    networks.insert(
        w.network.clone(),
        json!({
            "IPAddress": w.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            "IPPrefixLen": prefix,
            "Gateway": gateway,
            "MacAddress": i.live.mac.clone().unwrap_or_default(),
            "EndpointID": w.host_iface,
            "NetworkID": w.network,
        }),
    );
    let sandbox = match rt {
        Some(s) if alive => format!("/proc/{}/ns/net", s.pid),
        _ => String::new(),
    };

    let mounts: Vec<Value> = cfg["mounts"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|m| {
            m["type"] == "bind" || strings(m.get("options")).iter().any(|o| o.ends_with("bind"))
        })
        .map(|m| {
            let opts = strings(m.get("options"));
            json!({
                "Type": "bind",
                "Source": m["source"],
                "Destination": m["destination"],
                "Mode": "",
                "RW": !opts.iter().any(|o| o == "ro"),
                "Propagation": opts.iter().find(|o| o.contains("private") || o.contains("shared") || o.contains("slave")).cloned().unwrap_or_default(),
            })
        })
        .collect();

    let args = strings(process.get("args"));
    let (entrypoint, cmd) = if !w.command.is_empty() {
        (Value::Null, json!(w.command))
    } else if !i.image_entrypoint.is_empty() && args.starts_with(&i.image_entrypoint) {
        (
            json!(i.image_entrypoint),
            json!(args[i.image_entrypoint.len()..]),
        )
    } else {
        (Value::Null, json!(args))
    };
    let (uid, gid) = (
        process["user"]["uid"].as_u64().unwrap_or(0),
        process["user"]["gid"].as_u64().unwrap_or(0),
    );
    let config = json!({
        "Hostname": cfg["hostname"].as_str().unwrap_or(&w.name),
        "Env": strings(process.get("env")),
        "Cmd": cmd,
        "Entrypoint": entrypoint,
        "WorkingDir": process["cwd"].as_str().unwrap_or("/"),
        "User": if (uid, gid) == (0, 0) { String::new() } else { format!("{uid}:{gid}") },
        "Image": w.image,
        "Labels": w.labels,
    });

    json!({
        "Id": w.id,
        "Created": rt.map(|s| s.created.clone()).unwrap_or_else(|| {
            weft_runtime::rfc3339(std::time::UNIX_EPOCH + std::time::Duration::from_secs(w.created))
        }),
        "Path": args.first().cloned().unwrap_or_default(),
        "Args": args.get(1..).unwrap_or_default(),
        "State": state,
        "Image": w.image,
        "Name": format!("/{}", w.name),
        "RestartCount": rt.map_or(0, |s| s.restart_count),
        "Driver": "overlay",
        "Node": w.node,
        "Mounts": mounts,
        "Config": config,
        "HostConfig": host_config(cfg, i.net_of.as_deref(), &w.network),
        "NetworkSettings": {
            "SandboxKey": sandbox,
            "IPAddress": w.ip.map(|ip| ip.to_string()).unwrap_or_default(),
            "Networks": networks,
        },
    })
}

/// `HostConfig` from config.json: limits, restart policy, privileges, capabilities.
fn host_config(cfg: &Value, net_of: Option<&str>, network: &str) -> Value {
    let res = &cfg["linux"]["resources"];
    let memory = res["memory"]["limit"]
        .as_i64()
        .filter(|m| *m > 0)
        .unwrap_or(0);
    let nano_cpus = match (res["cpu"]["quota"].as_i64(), res["cpu"]["period"].as_u64()) {
        (Some(q), Some(p)) if q > 0 && p > 0 => q * 1_000_000_000 / p as i64,
        _ => 0,
    };
    let pids = res["pids"]["limit"].as_i64().filter(|p| *p > 0);
    let restart = cfg["annotations"][weft_runtime::ANNOTATION_RESTART]
        .as_str()
        .unwrap_or("no");
    let (policy, max) = match restart.split_once(':') {
        Some((p, n)) => (p, n.parse::<u32>().unwrap_or(0)),
        None => (restart, 0),
    };
    let process = &cfg["process"];
    // Only a privileged container runs without no_new_privs (see the runtime's bundle).
    let privileged = process.is_object() && process["noNewPrivileges"] != true;
    let bounding: Vec<String> = strings(process["capabilities"].get("bounding"))
        .iter()
        .map(|c| c.trim_start_matches("CAP_").to_string())
        .collect();
    let defaults = weft_runtime::default_capabilities();
    let (cap_add, cap_drop): (Vec<String>, Vec<String>) = if privileged {
        (vec![], vec![])
    } else {
        (
            bounding
                .iter()
                .filter(|c| !defaults.contains(&c.as_str()))
                .cloned()
                .collect(),
            defaults
                .iter()
                .filter(|d| !bounding.iter().any(|c| c == *d))
                .map(|d| d.to_string())
                .collect(),
        )
    };
    json!({
        "NetworkMode": net_of.map_or_else(|| network.to_string(), |n| format!("container:{n}")),
        "Memory": memory,
        "NanoCpus": nano_cpus,
        "PidsLimit": pids,
        "RestartPolicy": {"Name": policy, "MaximumRetryCount": max},
        "Privileged": privileged,
        "ReadonlyRootfs": cfg["root"]["readonly"] == true,
        "CapAdd": if cap_add.is_empty() { Value::Null } else { json!(cap_add) },
        "CapDrop": if cap_drop.is_empty() { Value::Null } else { json!(cap_drop) },
    })
}

/// Renders `template` for `v` with the subset of Go's text/template that weft takes:
/// literal text, `{{.}}`, `{{.A.B.C}}` paths and `{{json .A.B}}`. Anything else is an
/// error that says so.
pub fn render_template(v: &Value, template: &str) -> Result<String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .with_context(|| format!("template {template:?}: unclosed {{{{"))?;
        let action = after[..end].trim().trim_matches('-').trim();
        let (json_out, path) = match action.strip_prefix("json ") {
            Some(p) => (true, p.trim()),
            None => (false, action),
        };
        if !path.starts_with('.') || path.contains(char::is_whitespace) {
            bail!(
                "template action {{{{{action}}}}} is beyond what weft's --format takes: \
                 only {{{{.A.B.C}}}} paths and {{{{json .X}}}}; use -o json and jq for more"
            );
        }
        let mut cur = v;
        for key in path.split('.').filter(|k| !k.is_empty()) {
            cur = match cur.get(key) {
                Some(x) => x,
                None if cur.is_object() => &Value::Null,
                None => bail!("template {template:?}: cannot take .{key} of {cur}"),
            };
        }
        if json_out {
            out.push_str(&serde_json::to_string(cur)?);
        } else {
            out.push_str(&go_text(cur));
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// A value printed as Go's template does it: strings bare, `map[k:v]`, `[a b]`,
/// `<no value>` for what is missing.
fn go_text(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!("[{}]", a.iter().map(go_text).collect::<Vec<_>>().join(" ")),
        Value::Object(m) => {
            let sorted: BTreeMap<_, _> = m.iter().collect();
            let items: Vec<String> = sorted
                .iter()
                .map(|(k, v)| format!("{k}:{}", go_text(v)))
                .collect();
            format!("map[{}]", items.join(" "))
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests;
