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
        let (kvs, revision) = store
            .list("/weft/")
            .context("read cluster state from the store")?;
        let mut st = ClusterState {
            revision,
            ..Default::default()
        };
        for kv in kvs {
            st.push(decode(&kv.key, &kv.value)?);
        }
        Ok(st)
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
pub struct StateCache {
    items: BTreeMap<String, Item>,
    state: ClusterState,
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
        Ok(StateCache { items, state })
    }

    /// Applies `events` (in revision order, from a watch of `/weft/` started at
    /// [`StateCache::revision`]). On error the cache is unchanged up to the failing event; the
    /// caller should load it again.
    pub fn apply(&mut self, events: &[Event]) -> Result<()> {
        let mut dirty = Dirty::default();
        let mut result = Ok(());
        for ev in events {
            let k = &ev.kv.key;
            match ev.kind {
                EventKind::Delete => {
                    self.items.remove(k);
                }
                EventKind::Put => match decode(k, &ev.kv.value) {
                    Ok(item) => {
                        self.items.insert(k.clone(), item);
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                },
            }
            dirty.mark(k);
            self.state.revision = self.state.revision.max(ev.kv.mod_revision);
        }
        self.state.rebuild(&self.items, dirty);
        result
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

    #[test]
    fn a_cache_fed_by_events_equals_a_fresh_read() {
        let store = MemStore::new();
        put(
            &store,
            &keys::node("n1"),
            r#"{"name":"n1","address":"192.0.2.11"}"#,
        );
        put(&store, &keys::workload("a"), &workload("a", "10.244.0.1"));
        put(&store, &keys::workload("b"), &workload("b", "10.244.0.2"));
        put(
            &store,
            &keys::policy("NetworkPolicy", Some("default"), "p"),
            &POLICY.replace("PORT", "80"),
        );
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
