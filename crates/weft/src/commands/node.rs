//! The node daemon's companions started by `weft agent`.

use weft_model::keys;

/// The node's name server for its workloads, on the node's address, port 53. A failure to
/// start it is reported, not fatal: routing and policy still work without names.
pub(super) fn start_dns(
    store: &std::sync::Arc<dyn weft_store::Store>,
    node: &str,
) -> Option<weft_dns::Server> {
    let addr = match weft_store::get_json::<weft_model::Node>(store.as_ref(), &keys::node(node)) {
        Ok(Some((n, _))) => n.address,
        other => {
            tracing::warn!("no DNS: node {node} not readable from the store ({other:?})");
            return None;
        }
    };
    let bind = std::net::SocketAddr::new(addr.into(), weft_dns::DNS_PORT);
    let upstream = weft_dns::upstream_from_resolv_conf(std::path::Path::new("/etc/resolv.conf"));
    match weft_dns::Server::start(
        store.clone(),
        &[bind],
        weft_dns::DnsOptions {
            upstream,
            ttl: weft_dns::DEFAULT_TTL,
        },
    ) {
        Ok(s) => {
            tracing::info!(%bind, "DNS serving workload and service names");
            Some(s)
        }
        Err(e) => {
            tracing::warn!("DNS on {bind} not started: {e:#}");
            None
        }
    }
}
