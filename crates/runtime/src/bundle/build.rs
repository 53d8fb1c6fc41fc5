//! Building the OCI runtime spec of a [`RunSpec`].

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use anyhow::{anyhow, bail};
use oci_spec::runtime::{
    Capabilities, Capability, LinuxBuilder, LinuxCapabilitiesBuilder, LinuxCpuBuilder,
    LinuxIdMappingBuilder, LinuxMemoryBuilder, LinuxNamespace, LinuxNamespaceBuilder,
    LinuxNamespaceType, LinuxPidsBuilder, LinuxResourcesBuilder, ProcessBuilder, RootBuilder, Spec,
    SpecBuilder, UserBuilder,
};

use super::defaults::{default_mounts, default_seccomp, MASKED_PATHS, READONLY_PATHS};
use super::{
    RestartPolicy, RunSpec, ANNOTATION_CGROUP_PARENT, ANNOTATION_OVERLAY_LOWER, ANNOTATION_RESTART,
    DEFAULT_PATH, USERNS_HOST_ID, USERNS_SIZE,
};
use crate::cgroups::{self, CPU_PERIOD, MIN_MEMORY};
use crate::security::{caps, user};

/// Builds the OCI runtime spec of a [`RunSpec`]. A user given by name is looked up in the
/// /etc/passwd of `spec.rootfs_lower` (the only files it reads).
pub fn build_spec(spec: &RunSpec) -> anyhow::Result<Spec> {
    build_spec_in(spec, &spec.rootfs_lower)
}

/// [`build_spec`], looking users up in `roots` (topmost first).
pub(crate) fn build_spec_in(spec: &RunSpec, roots: &[PathBuf]) -> anyhow::Result<Spec> {
    if spec.args.is_empty() || spec.args[0].is_empty() {
        bail!("no command given: a container needs at least one argument");
    }
    if spec.privileged && spec.userns {
        bail!(
            "a privileged container cannot run in a user namespace; drop --privileged or --userns"
        );
    }
    let mut annotations = HashMap::new();
    for (k, v) in &spec.labels {
        if k.is_empty() || k.starts_with("io.weft.") {
            bail!("label key {k:?} is empty or uses the reserved prefix io.weft.");
        }
        annotations.insert(k.clone(), v.clone());
    }
    if !spec.rootfs_lower.is_empty() {
        let mut lowers = Vec::new();
        for l in &spec.rootfs_lower {
            let s = l
                .to_str()
                .filter(|s| l.is_absolute() && !s.contains([':', ',']));
            let Some(s) = s else {
                bail!(
                    "image layer {} must be an absolute UTF-8 path without ':' or ','",
                    l.display()
                );
            };
            lowers.push(s.to_string());
        }
        annotations.insert(ANNOTATION_OVERLAY_LOWER.to_string(), lowers.join(":"));
    }
    if spec.restart != RestartPolicy::No {
        annotations.insert(ANNOTATION_RESTART.to_string(), spec.restart.to_string());
    }
    if let Some(p) = &spec.cgroup_parent {
        cgroups::validate_path(p).map_err(|e| anyhow!("cgroup parent: {e}"))?;
        annotations.insert(ANNOTATION_CGROUP_PARENT.to_string(), p.clone());
    }

    let mut env = spec.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, DEFAULT_PATH.to_string());
    }
    if spec.tty && !env.iter().any(|e| e.starts_with("TERM=")) {
        env.push("TERM=xterm".into());
    }
    let cwd = if spec.cwd.is_empty() { "/" } else { &spec.cwd };
    if !cwd.starts_with('/') {
        bail!("working directory {cwd:?} must be an absolute path");
    }
    let u = match &spec.user {
        None => user::ResolvedUser::default(),
        Some(s) => user::resolve(s, roots).map_err(|e| anyhow!("user {s:?}: {e}"))?,
    };
    let set = capability_set(spec)?;
    let process = ProcessBuilder::default()
        .terminal(spec.tty)
        .user(
            UserBuilder::default()
                .uid(u.uid)
                .gid(u.gid)
                .additional_gids(u.additional_gids)
                .build()?,
        )
        .args(spec.args.clone())
        .env(env)
        .cwd(cwd)
        .capabilities(
            LinuxCapabilitiesBuilder::default()
                .bounding(set.clone())
                .effective(set.clone())
                .permitted(set)
                .inheritable(Capabilities::new())
                .ambient(Capabilities::new())
                .build()?,
        )
        .no_new_privileges(!spec.privileged)
        .build()?;

    let mut namespaces = vec![
        ns(LinuxNamespaceType::Pid, None)?,
        ns(LinuxNamespaceType::Ipc, None)?,
        ns(LinuxNamespaceType::Uts, None)?,
        ns(LinuxNamespaceType::Mount, None)?,
    ];
    namespaces.push(match &spec.netns {
        super::NsMode::New => ns(LinuxNamespaceType::Network, None)?,
        super::NsMode::Join(p) => ns(LinuxNamespaceType::Network, Some(p))?,
    });
    let mut linux = LinuxBuilder::default().namespaces(namespaces.clone());
    if spec.userns {
        namespaces.push(ns(LinuxNamespaceType::User, None)?);
        let map = LinuxIdMappingBuilder::default()
            .container_id(0u32)
            .host_id(USERNS_HOST_ID)
            .size(USERNS_SIZE)
            .build()?;
        linux = linux
            .namespaces(namespaces)
            .uid_mappings(vec![map])
            .gid_mappings(vec![map]);
    }
    // (Paths are always set: the builder's defaults are the spec crate's own lists.)
    if spec.privileged {
        linux = linux
            .masked_paths(Vec::<String>::new())
            .readonly_paths(Vec::<String>::new());
    } else {
        linux = linux
            .masked_paths(strings(MASKED_PATHS))
            .readonly_paths(strings(READONLY_PATHS))
            .seccomp(default_seccomp()?);
    }
    if let Some(r) = resources(spec)? {
        linux = linux.resources(r);
    }

    let mut builder = SpecBuilder::default()
        .version("1.0.2")
        .process(process)
        .root(
            RootBuilder::default()
                .path("rootfs")
                .readonly(spec.read_only)
                .build()?,
        )
        .mounts(default_mounts(spec.privileged)?)
        .linux(linux.build()?)
        .annotations(annotations);
    if !spec.hostname.is_empty() {
        builder = builder.hostname(spec.hostname.clone());
    }
    Ok(builder.build()?)
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Docker's default capabilities with `cap_drop` removed, then `cap_add` added (`ALL`
/// meaning every capability); every capability when privileged.
fn capability_set(spec: &RunSpec) -> anyhow::Result<Capabilities> {
    let is_all = |s: &String| s.eq_ignore_ascii_case("all");
    let mut names: Vec<&'static str> = if spec.privileged {
        caps::NAMES.to_vec()
    } else {
        caps::DOCKER_DEFAULT.to_vec()
    };
    for d in &spec.cap_drop {
        if is_all(d) {
            names.clear();
        } else {
            let c = caps::canonical(d).map_err(|e| anyhow!("--cap-drop: {e}"))?;
            names.retain(|n| *n != c);
        }
    }
    for a in &spec.cap_add {
        if is_all(a) {
            names = caps::NAMES.to_vec();
        } else {
            let c = caps::canonical(a).map_err(|e| anyhow!("--cap-add: {e}"))?;
            if !names.contains(&c) {
                names.push(c);
            }
        }
    }
    let mut set = HashSet::new();
    for n in names {
        let c: Capability = serde_json::from_value(serde_json::Value::String(n.into()))
            .map_err(|e| anyhow!("capability {n}: {e}"))?;
        set.insert(c);
    }
    Ok(set)
}

/// `linux.resources` for the limits of `spec`, checked.
fn resources(spec: &RunSpec) -> anyhow::Result<Option<oci_spec::runtime::LinuxResources>> {
    let mut r = LinuxResourcesBuilder::default();
    let mut any = false;
    if let Some(m) = spec.memory {
        if m <= 0 {
            bail!("memory limit {m} is not positive; give a size in bytes of at least 6 MiB");
        }
        if m < MIN_MEMORY {
            bail!("memory limit {m} bytes is below the minimum of 6 MiB");
        }
        r = r.memory(LinuxMemoryBuilder::default().limit(m).swap(m).build()?);
        any = true;
    }
    let mut cpu = LinuxCpuBuilder::default();
    let mut any_cpu = false;
    if let Some(c) = spec.cpus {
        if !c.is_finite() || c <= 0.0 {
            bail!("--cpus {c} is not a positive number of CPUs");
        }
        let quota = (c * CPU_PERIOD as f64).round();
        if quota < 1000.0 {
            bail!("--cpus {c} is below the minimum of 0.01");
        }
        if quota > i64::MAX as f64 {
            bail!("--cpus {c} is too large");
        }
        cpu = cpu.quota(quota as i64).period(CPU_PERIOD);
        any_cpu = true;
    }
    if let Some(s) = spec.cpu_shares {
        if !(2..=262_144).contains(&s) {
            bail!("--cpu-shares {s} is outside 2..=262144");
        }
        cpu = cpu.shares(s);
        any_cpu = true;
    }
    if any_cpu {
        r = r.cpu(cpu.build()?);
        any = true;
    }
    if let Some(p) = spec.pids_limit {
        if p <= 0 {
            bail!(
                "--pids-limit {p} is not positive; give the most processes the container may have"
            );
        }
        r = r.pids(LinuxPidsBuilder::default().limit(p).build()?);
        any = true;
    }
    if spec.privileged {
        // Every device, as Docker's --privileged; otherwise the runtime allows only its
        // default devices.
        r = r.devices(vec![oci_spec::runtime::LinuxDeviceCgroupBuilder::default()
            .allow(true)
            .access("rwm")
            .build()?]);
        any = true;
    }
    Ok(if any { Some(r.build()?) } else { None })
}

fn ns(
    typ: LinuxNamespaceType,
    path: Option<&std::path::PathBuf>,
) -> anyhow::Result<LinuxNamespace> {
    let b = LinuxNamespaceBuilder::default().typ(typ);
    Ok(match path {
        Some(p) => b.path(p.clone()).build()?,
        None => b.build()?,
    })
}
