//! One consistent read of the cluster's desired state.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use weft_ipam::{Block, IpPool};
use weft_model::policy::{NormalizedPolicy, Resource, Service};
use weft_model::{keys, ClusterConfig, Network, Node, Workload};
use weft_store::{Event, EventKind, Revision, Store};

/// Everything a node's plan depends on, read at one store revision.
#[derive(Clone, Debug, Default)]
pub struct ClusterState {
    pub revision: Revision,
    pub nodes: Vec<Node>,
    pub networks: Vec<Network>,
    pub workloads: Vec<Workload>,
    pub blocks: Vec<Block>,
    pub pools: Vec<IpPool>,
    pub config: ClusterConfig,
    /// Every policy, normalized; records that do not decode are in `warnings`.
    pub policies: Vec<NormalizedPolicy>,
    pub services: Vec<Service>,
    /// Published ports of every node (`weft run -p`).
    pub ports: Vec<weft_model::PublishedPort>,
    pub warnings: Vec<String>,
}

/// One record of `/weft/`, decoded.
#[derive(Clone, Debug)]
enum Item {
    Node(Node),
    Network(Network),
    Workload(Workload),
    /// `None`: a policy kind that applies nowhere (nothing to program).
    Policy(Option<NormalizedPolicy>),
    Service(Service),
    Port(weft_model::PublishedPort),
    Pool(IpPool),
    Config(ClusterConfig),
    Block(Block),
    /// A policy or service that does not decode: reported, not fatal.
    Warning(String),
    /// Anything else under `/weft/`.
    Other,
}

/// Decodes the record at `k`; nodes, networks, workloads, ports, pools, blocks and the config
/// must decode, policies and services that do not are warnings.
fn decode(k: &str, v: &[u8]) -> Result<Item> {
    let parse = || format!("decode {k} from the store");
    Ok(if k.starts_with(keys::NODES) {
        Item::Node(serde_json::from_slice(v).with_context(parse)?)
    } else if k.starts_with(keys::NETWORKS) {
        Item::Network(serde_json::from_slice(v).with_context(parse)?)
    } else if k.starts_with(keys::WORKLOADS) {
        Item::Workload(serde_json::from_slice(v).with_context(parse)?)
    } else if k.starts_with(keys::POLICIES) {
        let decoded =
            Resource::from_stored_json(v).and_then(|r| r.to_policy().map_err(|e| e.to_string()));
        match decoded {
            Ok(p) => Item::Policy(p),
            Err(e) => Item::Warning(format!("policy {k} ignored: {e}")),
        }
    } else if k.starts_with(keys::SERVICES) {
        match Resource::from_stored_json(v) {
            Ok(Resource::Service(svc)) => Item::Service(svc),
            Ok(_) => Item::Warning(format!("{k} is not a service")),
            Err(e) => Item::Warning(format!("service {k} ignored: {e}")),
        }
    } else if k.starts_with(keys::PORTS) {
        Item::Port(serde_json::from_slice(v).with_context(parse)?)
    } else if k.starts_with(weft_ipam::keys::POOLS) {
        Item::Pool(serde_json::from_slice(v).with_context(parse)?)
    } else if k == keys::CONFIG {
        Item::Config(serde_json::from_slice(v).with_context(parse)?)
    } else if k.starts_with(weft_ipam::keys::BLOCKS) {
        Item::Block(serde_json::from_slice(v).with_context(parse)?)
    } else {
        Item::Other
    })
}

/// The parts of [`ClusterState`] a change may touch.
#[derive(Clone, Copy, Default)]
struct Dirty {
    nodes: bool,
    networks: bool,
    workloads: bool,
    policies: bool,
    services: bool,
    ports: bool,
    pools: bool,
    config: bool,
    blocks: bool,
}

impl Dirty {
    const ALL: Dirty = Dirty {
        nodes: true,
        networks: true,
        workloads: true,
        policies: true,
        services: true,
        ports: true,
        pools: true,
        config: true,
        blocks: true,
    };

    fn mark(&mut self, k: &str) {
        if k.starts_with(keys::NODES) {
            self.nodes = true;
        } else if k.starts_with(keys::NETWORKS) {
            self.networks = true;
        } else if k.starts_with(keys::WORKLOADS) {
            self.workloads = true;
        } else if k.starts_with(keys::POLICIES) {
            self.policies = true;
        } else if k.starts_with(keys::SERVICES) {
            self.services = true;
        } else if k.starts_with(keys::PORTS) {
            self.ports = true;
        } else if k.starts_with(weft_ipam::keys::POOLS) {
            self.pools = true;
        } else if k == keys::CONFIG {
            self.config = true;
        } else if k.starts_with(weft_ipam::keys::BLOCKS) {
            self.blocks = true;
        }
    }
}

impl ClusterState {
    /// Reads the whole of `/weft/` in one list, so every part is from the same revision.
    pub fn load(store: &dyn Store) -> Result<ClusterState> {
        ClusterState::load_where(store, |_| true)
    }

    /// The records of `/weft/` whose key `keep` accepts, read in one list.
    fn load_where(store: &dyn Store, keep: impl Fn(&str) -> bool) -> Result<ClusterState> {
        let (kvs, revision) = store
            .list("/weft/")
            .context("read cluster state from the store")?;
        let mut st = ClusterState {
            revision,
            ..Default::default()
        };
        for kv in kvs.iter().filter(|kv| keep(&kv.key)) {
            st.push(decode(&kv.key, &kv.value)?);
        }
        Ok(st)
    }

    /// Like [`ClusterState::load`], but without the services (`services` is left empty): each
    /// part is listed under its own prefix, so the services' records are not even read. For a
    /// reader that needs a few services out of thousands (a trace); it adds them with
    /// [`ClusterState::add_services`]. The parts are from one revision: when the store changes
    /// between two lists they are read again, and after a few tries the whole store is read
    /// in one list (its services left out).
    pub fn load_without_services(store: &dyn Store) -> Result<ClusterState> {
        const PARTS: [&str; 8] = [
            keys::NODES,
            keys::NETWORKS,
            keys::WORKLOADS,
            keys::POLICIES,
            keys::PORTS,
            weft_ipam::keys::POOLS,
            weft_ipam::keys::BLOCKS,
            keys::CONFIG,
        ];
        for _ in 0..3 {
            let mut st = ClusterState::default();
            let mut revisions = Vec::with_capacity(PARTS.len());
            for prefix in PARTS {
                let (kvs, revision) = store
                    .list(prefix)
                    .context("read cluster state from the store")?;
                for kv in kvs {
                    st.push(decode(&kv.key, &kv.value)?);
                }
                revisions.push(revision);
            }
            if revisions.iter().all(|r| *r == revisions[0]) {
                st.revision = revisions[0];
                return Ok(st);
            }
        }
        ClusterState::load_where(store, |key| !key.starts_with(keys::SERVICES))
    }

    /// Adds the services stored under `prefix` (`/weft/services/`, a namespace's prefix, or one
    /// service's key: only keys equal to it or below it as a path count) whose stored record
    /// `keep` accepts. `keep` sees the raw JSON, so the records it refuses are never decoded;
    /// the ones that do not decode are warnings, as in [`ClusterState::load`]. A service
    /// already held is not added twice, and `services` stays in key order. Returns the
    /// store's revision at this read: when it is not [`ClusterState::revision`], the store
    /// changed since the rest of the state was read.
    pub fn add_services(
        &mut self,
        store: &dyn Store,
        prefix: &str,
        keep: &dyn Fn(&[u8]) -> bool,
    ) -> Result<Revision> {
        let (kvs, revision) = store
            .list(prefix)
            .with_context(|| format!("read services {prefix} from the store"))?;
        let below = |k: &str| {
            k.len() == prefix.len() || prefix.ends_with('/') || k[prefix.len()..].starts_with('/')
        };
        let key_of = |s: &Service| keys::service(&s.metadata.namespace, &s.metadata.name);
        let mut added = false;
        for kv in kvs {
            if !kv.key.starts_with(keys::SERVICES) || !below(&kv.key) || !keep(&kv.value) {
                continue;
            }
            match decode(&kv.key, &kv.value)? {
                Item::Service(s) if self.services.iter().any(|h| key_of(h) == key_of(&s)) => {}
                Item::Warning(w) if self.warnings.contains(&w) => {}
                item => {
                    added = true;
                    self.push(item);
                }
            }
        }
        if added {
            self.services.sort_by_cached_key(key_of);
        }
        Ok(revision)
    }

    /// Adds one decoded record (records come in key order).
    fn push(&mut self, item: Item) {
        match item {
            Item::Node(n) => self.nodes.push(n),
            Item::Network(n) => self.networks.push(n),
            Item::Workload(w) => self.workloads.push(w),
            Item::Policy(Some(p)) => self.policies.push(p),
            Item::Service(s) => self.services.push(s),
            Item::Port(p) => self.ports.push(p),
            Item::Pool(p) => self.pools.push(p),
            Item::Config(c) => self.config = c,
            Item::Block(b) => self.blocks.push(b),
            Item::Warning(w) => self.warnings.push(w),
            Item::Policy(None) | Item::Other => {}
        }
    }

    /// Remakes the parts marked in `dirty` from `items` (in key order, as a list returns them).
    fn rebuild(&mut self, items: &BTreeMap<String, Item>, dirty: Dirty) {
        let d = dirty;
        if d.nodes {
            self.nodes.clear();
        }
        if d.networks {
            self.networks.clear();
        }
        if d.workloads {
            self.workloads.clear();
        }
        if d.policies || d.services {
            self.warnings.clear();
        }
        if d.policies {
            self.policies.clear();
        }
        if d.services {
            self.services.clear();
        }
        if d.ports {
            self.ports.clear();
        }
        if d.pools {
            self.pools.clear();
        }
        if d.config {
            self.config = ClusterConfig::default();
        }
        if d.blocks {
            self.blocks.clear();
        }
        for item in items.values() {
            match item {
                Item::Node(n) if d.nodes => self.nodes.push(n.clone()),
                Item::Network(n) if d.networks => self.networks.push(n.clone()),
                Item::Workload(w) if d.workloads => self.workloads.push(w.clone()),
                Item::Policy(Some(p)) if d.policies => self.policies.push(p.clone()),
                Item::Service(s) if d.services => self.services.push(s.clone()),
                Item::Port(p) if d.ports => self.ports.push(p.clone()),
                Item::Pool(p) if d.pools => self.pools.push(p.clone()),
                Item::Config(c) if d.config => self.config = c.clone(),
                Item::Block(b) if d.blocks => self.blocks.push(b.clone()),
                Item::Warning(w) if d.policies || d.services => self.warnings.push(w.clone()),
                _ => {}
            }
        }
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name == name)
    }
}

/// The cluster state kept current from watch events, decoding only the records that change
/// (Felix's syncer): an agent's pass no longer reads and decodes the whole store.
///
/// Workloads and services are patched in place (a change costs a search and a move, not a
/// copy of every workload), and what changed is kept until [`StateCache::take_changes`], so
/// that a pass can redo only what depends on it.
pub struct StateCache {
    items: BTreeMap<String, Item>,
    state: ClusterState,
    changes: Changes,
}

/// What changed in a [`StateCache`] since the last [`StateCache::take_changes`].
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// Everything may have changed (a fresh load): nothing of a previous pass can be kept.
    pub all: bool,
    /// Workload records that changed: (before, after); `None` when absent.
    pub workloads: Vec<(Option<Workload>, Option<Workload>)>,
    /// Services (namespace, name) whose record changed, appeared or went away.
    pub services: Vec<(String, String)>,
    /// Something else changed (nodes, networks, policies, pools, blocks, ports, config, or a
    /// record that does not decode).
    pub other: bool,
}

impl Changes {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        !self.all && !self.other && self.workloads.is_empty() && self.services.is_empty()
    }
}

/// Where the state keeps the record at `k` in key order: its index in `list`, found by
/// comparing keys made from the records (`key_of`); `Err(i)`: not there, would go at `i`.
fn position<T>(list: &[T], k: &str, key_of: impl Fn(&T) -> String) -> Result<usize, usize> {
    list.binary_search_by(|x| key_of(x).as_str().cmp(k))
}

fn service_key(s: &Service) -> String {
    keys::service(&s.metadata.namespace, &s.metadata.name)
}

impl StateCache {
    /// Reads and decodes the whole of `/weft/` at one revision.
    pub fn load(store: &dyn Store) -> Result<StateCache> {
        let (kvs, revision) = store
            .list("/weft/")
            .context("read cluster state from the store")?;
        let mut items = BTreeMap::new();
        for kv in kvs {
            let item = decode(&kv.key, &kv.value)?;
            items.insert(kv.key, item);
        }
        let mut state = ClusterState {
            revision,
            ..Default::default()
        };
        state.rebuild(&items, Dirty::ALL);
        Ok(StateCache {
            items,
            state,
            changes: Changes {
                all: true,
                ..Changes::default()
            },
        })
    }

    /// Applies `events` (in revision order, from a watch of `/weft/` started at
    /// [`StateCache::revision`]). On error the cache is unchanged up to the failing event; the
    /// caller should load it again.
    pub fn apply(&mut self, events: &[Event]) -> Result<()> {
        let mut dirty = Dirty::default();
        let mut rebuild = false;
        let mut result = Ok(());
        for ev in events {
            self.note_change();
            let k = &ev.kv.key;
            let new = match ev.kind {
                EventKind::Delete => None,
                EventKind::Put => match decode(k, &ev.kv.value) {
                    Ok(item) => Some(item),
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                },
            };
            let old = match &new {
                Some(item) => self.items.insert(k.clone(), item.clone()),
                None => self.items.remove(k),
            };
            self.state.revision = self.state.revision.max(ev.kv.mod_revision);
            if matches!(
                (&old, &new),
                (None | Some(Item::Other), None | Some(Item::Other))
            ) {
                // A record the state does not hold (an agent's status, say): nothing changed.
                continue;
            }
            if !self.patch(k, old, new) {
                rebuild = true;
                dirty.mark(k);
                self.changes.other = true;
                if k.starts_with(keys::WORKLOADS) {
                    self.changes.all = true;
                } else if let Some((ns, name)) = k
                    .strip_prefix(keys::SERVICES)
                    .and_then(|r| r.split_once('/'))
                {
                    self.changes
                        .services
                        .push((ns.to_string(), name.to_string()));
                }
            }
        }
        if rebuild {
            self.state.rebuild(&self.items, dirty);
        }
        result
    }

    /// Patches a workload or service change into the state in place; false when the change
    /// is of another kind (or does not fit the state's order), for [`ClusterState::rebuild`].
    fn patch(&mut self, k: &str, old: Option<Item>, new: Option<Item>) -> bool {
        match (old, new) {
            (old @ (None | Some(Item::Workload(_))), new @ (None | Some(Item::Workload(_))))
                if k.starts_with(keys::WORKLOADS) =>
            {
                let list = &mut self.state.workloads;
                let at = position(list, k, |w| keys::workload(&w.name));
                let new = match new {
                    Some(Item::Workload(w)) if keys::workload(&w.name) == k => Some(w),
                    None => None,
                    _ => return false,
                };
                match (at, &new) {
                    (Ok(i), Some(w)) => list[i] = w.clone(),
                    (Ok(i), None) => {
                        list.remove(i);
                    }
                    (Err(i), Some(w)) => list.insert(i, w.clone()),
                    (Err(_), None) => {}
                }
                let old = match old {
                    Some(Item::Workload(w)) => Some(w),
                    _ => None,
                };
                self.changes.workloads.push((old, new));
                true
            }
            (old @ (None | Some(Item::Service(_))), new @ (None | Some(Item::Service(_))))
                if k.starts_with(keys::SERVICES) =>
            {
                let list = &mut self.state.services;
                let at = position(list, k, service_key);
                let (ns, name) = match (&old, &new) {
                    (_, Some(Item::Service(s))) if service_key(s) == k => {
                        (s.metadata.namespace.clone(), s.metadata.name.clone())
                    }
                    (Some(Item::Service(s)), None) => {
                        (s.metadata.namespace.clone(), s.metadata.name.clone())
                    }
                    (None, None) => return true,
                    _ => return false,
                };
                match (at, new) {
                    (Ok(i), Some(Item::Service(s))) => list[i] = s,
                    (Ok(i), _) => {
                        list.remove(i);
                    }
                    (Err(i), Some(Item::Service(s))) => list.insert(i, s),
                    (Err(_), _) => {}
                }
                self.changes.services.push((ns, name));
                true
            }
            _ => false,
        }
    }

    /// What changed since the last call (or the load), and starts afresh.
    pub fn take_changes(&mut self) -> Changes {
        std::mem::take(&mut self.changes)
    }

    /// Past this many changes not taken, they are forgotten for "everything changed" (a full
    /// pass is then as cheap, and a reader that never takes them keeps no growing list).
    const MAX_CHANGES: usize = 4096;

    fn note_change(&mut self) {
        let c = &mut self.changes;
        if c.workloads.len() + c.services.len() > Self::MAX_CHANGES {
            *c = Changes {
                all: true,
                ..Changes::default()
            };
        }
    }

    /// The revision the cache is current at.
    pub fn revision(&self) -> Revision {
        self.state.revision
    }

    /// The state as of [`StateCache::revision`].
    pub fn state(&self) -> &ClusterState {
        &self.state
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use weft_model::keys;
    use weft_store::{MemStore, Op, Store};

    use super::{ClusterState, StateCache};

    fn put(s: &dyn Store, k: &str, v: &str) {
        s.txn(&[], &[Op::Put(k.to_string(), v.as_bytes().to_vec())])
            .unwrap();
    }

    const POLICY: &str = r#"{"apiVersion":"projectcalico.org/v3","kind":"NetworkPolicy","metadata":{"name":"p","namespace":"default"},"spec":{"selector":"app == 'web'","types":["Ingress"],"ingress":[{"action":"Allow","protocol":"TCP","destination":{"ports":[PORT]}}]}}"#;

    fn workload(name: &str, ip: &str) -> String {
        format!(
            r#"{{"name":"{name}","id":"{name}","node":"n1","network":"net1","ip":"{ip}","host_iface":"cali{name}","labels":{{"app":"web"}},"image":"toolbox"}}"#
        )
    }

    /// A store with node n1, the given workloads on it and policy `p` (TCP/80).
    fn node_and_policy(workloads: &[(&str, &str)]) -> MemStore {
        let store = MemStore::new();
        put(
            &store,
            &keys::node("n1"),
            r#"{"name":"n1","address":"192.0.2.11"}"#,
        );
        for (name, ip) in workloads {
            put(&store, &keys::workload(name), &workload(name, ip));
        }
        put(
            &store,
            &keys::policy("NetworkPolicy", Some("default"), "p"),
            &POLICY.replace("PORT", "80"),
        );
        store
    }

    #[test]
    fn a_cache_fed_by_events_equals_a_fresh_read() {
        let store = node_and_policy(&[("a", "10.244.0.1"), ("b", "10.244.0.2")]);
        let mut cache = StateCache::load(&store).unwrap();
        let mut watch = store.watch("/weft/", cache.revision()).unwrap();
        assert_eq!(cache.state().workloads.len(), 2);

        // A policy edit, a workload removed, one added, one changed, a bad policy.
        put(
            &store,
            &keys::policy("NetworkPolicy", Some("default"), "p"),
            &POLICY.replace("PORT", "8080"),
        );
        weft_store::delete(&store, &keys::workload("a")).unwrap();
        put(&store, &keys::workload("c"), &workload("c", "10.244.0.3"));
        put(&store, &keys::workload("b"), &workload("b", "10.244.0.9"));
        put(
            &store,
            &keys::policy("NetworkPolicy", Some("default"), "bad"),
            "{",
        );
        let events = watch.next(Duration::from_millis(100)).unwrap();
        assert_eq!(events.len(), 5);
        cache.apply(&events).unwrap();

        let fresh = ClusterState::load(&store).unwrap();
        assert_eq!(format!("{:?}", cache.state()), format!("{fresh:?}"));
        assert_eq!(cache.revision(), store.revision().unwrap());
        let names: Vec<&str> = cache
            .state()
            .workloads
            .iter()
            .map(|w| w.name.as_str())
            .collect();
        assert_eq!(names, ["b", "c"]);
        assert_eq!(
            cache.state().warnings.len(),
            1,
            "{:?}",
            cache.state().warnings
        );
        assert_eq!(
            cache.state().policies[0].ingress[0].dst.ports,
            [(8080, 8080)]
        );
    }

    fn service(name: &str, ip: &str, node_port: Option<u16>) -> String {
        let (kind, np) = match node_port {
            Some(p) => ("NodePort", format!(r#","nodePort":{p}"#)),
            None => ("ClusterIP", String::new()),
        };
        format!(
            r#"{{"apiVersion":"v1","kind":"Service","metadata":{{"name":"{name}","namespace":"default"}},"spec":{{"type":"{kind}","selector":{{"app":"web"}},"clusterIP":"{ip}","ports":[{{"port":80{np}}}]}}}}"#
        )
    }

    fn names(st: &ClusterState) -> Vec<&str> {
        st.services
            .iter()
            .map(|s| s.metadata.name.as_str())
            .collect()
    }

    fn holds(v: &[u8], what: &str) -> bool {
        v.windows(what.len()).any(|w| w == what.as_bytes())
    }

    #[test]
    fn a_read_without_services_plus_its_services_equals_a_full_read() {
        let store = node_and_policy(&[("a", "10.244.0.1")]);
        let svc = |n: &str| keys::service("default", n);
        put(&store, &svc("web"), &service("web", "10.96.0.10", None));
        put(&store, &svc("web2"), &service("web2", "10.96.0.12", None));
        put(
            &store,
            &svc("np"),
            &service("np", "10.96.0.11", Some(30080)),
        );
        put(&store, &svc("bad"), "{");
        let full = ClusterState::load(&store).unwrap();
        assert_eq!(names(&full), ["np", "web", "web2"]);

        let mut lean = ClusterState::load_without_services(&store).unwrap();
        assert!(lean.services.is_empty() && lean.warnings.is_empty());
        assert_eq!(lean.revision, full.revision);
        // One service by its key (not web2, whose key only starts with it), then every
        // service with its address (the same one: not added twice), then the NodePorts.
        let rev = lean.add_services(&store, &svc("web"), &|_| true).unwrap();
        assert_eq!(rev, lean.revision);
        assert_eq!(names(&lean), ["web"]);
        lean.add_services(&store, keys::SERVICES, &|v| holds(v, "\"10.96.0.10\""))
            .unwrap();
        assert_eq!(names(&lean), ["web"]);
        lean.add_services(&store, keys::SERVICES, &|v| holds(v, "nodePort"))
            .unwrap();
        assert_eq!(names(&lean), ["np", "web"]);
        // Everything, twice: the same state as one full read.
        for _ in 0..2 {
            lean.add_services(&store, keys::SERVICES, &|_| true)
                .unwrap();
        }
        assert_eq!(format!("{lean:?}"), format!("{full:?}"));

        // A change after the read shows in the revision the services are read at.
        let mut lean = ClusterState::load_without_services(&store).unwrap();
        weft_store::delete(&store, &svc("web2")).unwrap();
        let rev = lean
            .add_services(&store, keys::SERVICES, &|_| true)
            .unwrap();
        assert!(rev > lean.revision);
    }

    #[test]
    fn the_cache_tells_what_changed_since_it_was_last_asked() {
        let store = MemStore::new();
        put(&store, &keys::workload("a"), &workload("a", "10.244.0.1"));
        let mut cache = StateCache::load(&store).unwrap();
        let mut watch = store.watch("/weft/", cache.revision()).unwrap();
        assert!(cache.take_changes().all, "a load is a change of everything");
        assert!(cache.take_changes().is_empty());

        put(&store, &keys::workload("a"), &workload("a", "10.244.0.7"));
        put(&store, &keys::workload("b"), &workload("b", "10.244.0.2"));
        put(
            &store,
            &keys::service("default", "web"),
            r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"web"},"spec":{"clusterIP":"10.96.0.10","selector":{"app":"web"},"ports":[{"port":80}]}}"#,
        );
        cache
            .apply(&watch.next(Duration::from_millis(100)).unwrap())
            .unwrap();
        let c = cache.take_changes();
        assert!(!c.all && !c.other, "{c:?}");
        let ips: Vec<_> = c
            .workloads
            .iter()
            .map(|(b, a)| (b.as_ref().and_then(|w| w.ip), a.as_ref().and_then(|w| w.ip)))
            .collect();
        assert_eq!(
            ips,
            [
                (Some([10, 244, 0, 1].into()), Some([10, 244, 0, 7].into())),
                (None, Some([10, 244, 0, 2].into()))
            ]
        );
        assert_eq!(c.services, [("default".to_string(), "web".to_string())]);
        assert_eq!(
            format!("{:?}", cache.state()),
            format!("{:?}", ClusterState::load(&store).unwrap())
        );

        // A record the state does not hold (the agent's own status) is no change.
        put(&store, &keys::agent_status("n1"), r#"{"node":"n1"}"#);
        cache
            .apply(&watch.next(Duration::from_millis(100)).unwrap())
            .unwrap();
        assert!(cache.take_changes().is_empty());

        // Anything else is "other"; a workload removed is (before, None).
        put(
            &store,
            &keys::node("n1"),
            r#"{"name":"n1","address":"192.0.2.11"}"#,
        );
        weft_store::delete(&store, &keys::workload("b")).unwrap();
        cache
            .apply(&watch.next(Duration::from_millis(100)).unwrap())
            .unwrap();
        let c = cache.take_changes();
        assert!(c.other && !c.all);
        assert!(matches!(&c.workloads[..], [(Some(_), None)]));
        assert_eq!(
            format!("{:?}", cache.state()),
            format!("{:?}", ClusterState::load(&store).unwrap())
        );
    }

    #[test]
    fn a_record_that_does_not_decode_is_an_error() {
        let store = MemStore::new();
        let mut cache = StateCache::load(&store).unwrap();
        let mut watch = store.watch("/weft/", cache.revision()).unwrap();
        put(&store, &keys::workload("x"), "not json");
        let events = watch.next(Duration::from_millis(100)).unwrap();
        let err = cache.apply(&events).unwrap_err();
        assert!(format!("{err:#}").contains("/weft/workloads/x"), "{err:#}");
    }
}
