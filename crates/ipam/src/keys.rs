//! Where IPAM records live in the store.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

/// Prefix of IP pools: `/weft/ippools/<name>` → [`crate::IpPool`].
pub const POOLS: &str = "/weft/ippools/";
/// Prefix of every IPAM record (blocks and handles), read at once for consistent views.
pub const IPAM: &str = "/weft/ipam/";
/// Prefix of blocks: `/weft/ipam/blocks/<a.b.c.d-len>` → [`crate::Block`].
pub const BLOCKS: &str = "/weft/ipam/blocks/";
/// Prefix of handles: `/weft/ipam/handles/<handle>` → [`crate::Handle`].
pub const HANDLES: &str = "/weft/ipam/handles/";

/// IPAM settings of the whole cluster: [`crate::IpamConfig`].
pub const CONFIG: &str = "/weft/ipam/config";
/// Prefix of leak sightings: `/weft/ipam/leaks/<handle>`, when `gc` first saw a handle leaked.
pub const LEAKS: &str = "/weft/ipam/leaks/";

/// Key of the leak sighting of handle `id`.
pub fn leak(id: &str) -> String {
    format!("{LEAKS}{id}")
}

/// Key of the pool `name`.
pub fn pool(name: &str) -> String {
    format!("{POOLS}{name}")
}

/// Key of the block `cidr`, e.g. `/weft/ipam/blocks/10.244.0.64-26`.
pub fn block(cidr: Ipv4Net) -> String {
    format!("{BLOCKS}{}-{}", cidr.network(), cidr.prefix_len())
}

/// Key of the handle `id` (`<network>.<container-id>`).
pub fn handle(id: &str) -> String {
    format!("{HANDLES}{id}")
}

/// The block CIDR named by a block key, if it is well formed.
pub fn parse_block(key: &str) -> Option<Ipv4Net> {
    let (addr, len) = key.strip_prefix(BLOCKS)?.rsplit_once('-')?;
    let addr: Ipv4Addr = addr.parse().ok()?;
    Ipv4Net::new(addr, len.parse().ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_key_round_trip() {
        let cidr: Ipv4Net = "10.244.0.64/26".parse().unwrap();
        assert_eq!(block(cidr), "/weft/ipam/blocks/10.244.0.64-26");
        assert_eq!(parse_block(&block(cidr)), Some(cidr));
        assert_eq!(parse_block("/weft/ipam/blocks/x-26"), None);
        assert_eq!(handle("net.abc"), "/weft/ipam/handles/net.abc");
        assert_eq!(pool("p"), "/weft/ippools/p");
    }
}
