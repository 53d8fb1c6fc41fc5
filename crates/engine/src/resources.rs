//! `weft apply -f`, `get`, `delete` of declarative resources (policies now; services later):
//! all documents of a file are decoded and validated first, then written in one transaction, so
//! bad input applies nothing.

use anyhow::{bail, Context, Result};
use serde::Serialize;
use weft_model::keys;
use weft_model::policy::{decode_documents, Resource};
use weft_store::{Compare, Op, Store};

use crate::Cluster;

/// What happened to one resource, kubectl style: `networkpolicy.projectcalico.org/x created`.
#[derive(Clone, Debug, Serialize)]
pub struct Applied {
    pub resource: String,
    pub action: &'static str,
}

impl std::fmt::Display for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.resource, self.action)
    }
}

fn key_of(r: &Resource) -> String {
    match r {
        Resource::Service(s) => keys::service(&s.metadata.namespace, &s.metadata.name),
        _ => keys::policy(r.kind(), r.namespace(), r.name()),
    }
}

/// `kind.group/name`, as kubectl names objects.
fn describe(r: &Resource) -> String {
    let group = r.api_version().split('/').next().unwrap_or("");
    if r.api_version().contains('/') {
        format!("{}.{group}/{}", r.kind().to_ascii_lowercase(), r.name())
    } else {
        format!("{}/{}", r.kind().to_ascii_lowercase(), r.name())
    }
}

/// Decodes `text` (YAML or JSON, several documents) and stores every resource in one
/// transaction; nothing is written when any document is invalid.
pub fn apply(c: &Cluster, text: &str) -> Result<Vec<Applied>> {
    let resources = decode_documents(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    if resources.is_empty() {
        bail!("no resources found in the input");
    }
    let store: &dyn Store = c.store.as_ref();
    loop {
        let mut compares = vec![];
        let mut ops = vec![];
        let mut out = vec![];
        let resources = crate::services::assign(c, &resources, &mut compares)?;
        for r in &resources {
            let key = key_of(r);
            let value = serde_json::to_vec(r)?;
            let current = store.get(&key)?;
            let action = match &current {
                None => "created",
                Some(kv) if kv.value == value => "unchanged",
                Some(_) => "configured",
            };
            compares.push(Compare::ModRevision(
                key.clone(),
                current.map(|kv| kv.mod_revision).unwrap_or(0),
            ));
            if action != "unchanged" {
                ops.push(Op::Put(key, value));
            }
            out.push(Applied {
                resource: describe(r),
                action,
            });
        }
        if ops.is_empty() || store.txn(&compares, &ops)?.succeeded {
            return Ok(out);
        }
        // Someone changed one of them meanwhile: decide again.
    }
}

/// Every stored policy resource.
pub fn list_policies(c: &Cluster) -> Result<Vec<Resource>> {
    let mut all: Vec<Resource> =
        weft_store::list_json::<Resource>(c.store.as_ref(), keys::POLICIES)
            .context("read policies")?
            .into_iter()
            .map(|(_, r, _)| r)
            .collect();
    all.extend(crate::services::list(c)?.into_iter().map(Resource::Service));
    Ok(all)
}

/// Kinds as users type them, to the stored kind names they mean.
fn kinds_for(kind: &str) -> Result<&'static [&'static str]> {
    Ok(match kind.to_ascii_lowercase().as_str() {
        "policy" | "policies" | "networkpolicy" | "networkpolicies" | "netpol" => {
            &["NetworkPolicy", "K8sNetworkPolicy"]
        }
        "globalpolicy" | "globalpolicies" | "globalnetworkpolicy" | "globalnetworkpolicies" => {
            &["GlobalNetworkPolicy"]
        }
        "service" | "services" | "svc" => &["Service"],
        other => bail!("unknown kind {other:?}; use policy, globalpolicy or service"),
    })
}

/// Whether `kind` (as typed by a user) names a policy kind.
pub fn is_policy_kind(kind: &str) -> bool {
    kinds_for(kind).is_ok()
}

/// Policies of `kind` (as typed by a user), optionally only the one named `name`.
pub fn get_policies(c: &Cluster, kind: &str, name: Option<&str>) -> Result<Vec<Resource>> {
    let kinds = kinds_for(kind)?;
    let all: Vec<Resource> = list_policies(c)?
        .into_iter()
        .filter(|r| kinds.iter().any(|k| variant_kind(r) == *k))
        .filter(|r| name.is_none_or(|n| r.name() == n))
        .collect();
    if let (Some(n), true) = (name, all.is_empty()) {
        bail!("{kind} {n:?} not found; see `weft get {kind}`");
    }
    Ok(all)
}

/// The kind name that tells the Calico and Kubernetes NetworkPolicy apart.
fn variant_kind(r: &Resource) -> &'static str {
    match r {
        Resource::K8sNetworkPolicy(_) => "K8sNetworkPolicy",
        _ => r.kind(),
    }
}

/// `weft delete KIND NAME`.
pub fn delete(c: &Cluster, kind: &str, name: &str) -> Result<Vec<Applied>> {
    let found = get_policies(c, kind, Some(name))?;
    delete_resources(c, &found)
}

/// `weft delete -f FILE`: every resource of the file, in one transaction.
pub fn delete_file(c: &Cluster, text: &str) -> Result<Vec<Applied>> {
    let resources = decode_documents(text).map_err(|e| anyhow::anyhow!("{e}"))?;
    delete_resources(c, &resources)
}

fn delete_resources(c: &Cluster, resources: &[Resource]) -> Result<Vec<Applied>> {
    let store: &dyn Store = c.store.as_ref();
    let mut ops = vec![];
    let mut out = vec![];
    for r in resources {
        let key = key_of(r);
        if store.get(&key)?.is_none() {
            bail!("{} not found; nothing was deleted", describe(r));
        }
        ops.push(Op::Delete(key));
        out.push(Applied {
            resource: describe(r),
            action: "deleted",
        });
    }
    store.txn(&[], &ops)?;
    Ok(out)
}
