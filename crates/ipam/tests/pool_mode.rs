//! A pool's VXLAN mode (Calico's IPPool `vxlanMode`): set, cleared, and read with the cluster's
//! default.

mod common;

use common::setup;
use weft_ipam::{keys, Error, IpPool, Ipam};
use weft_model::{Encap, VxlanMode};
use weft_store::get_json;

fn pool(s: &dyn weft_store::Store) -> IpPool {
    get_json::<IpPool>(s, &keys::pool("p")).unwrap().unwrap().0
}

#[test]
fn a_pools_mode_overrides_the_cluster_default_until_cleared() {
    let (_d, s) = setup("10.9.0.0/16", 26);
    let ipam = Ipam::new(&s);
    assert_eq!(pool(&s).vxlan_mode, None);
    assert_eq!(
        pool(&s).vxlan_mode_or(Encap::CrossSubnet),
        VxlanMode::CrossSubnet
    );
    assert_eq!(pool(&s).vxlan_mode_or(Encap::None), VxlanMode::Never);

    ipam.set_vxlan_mode("p", Some(VxlanMode::Always)).unwrap();
    assert_eq!(pool(&s).vxlan_mode_or(Encap::None), VxlanMode::Always);
    // The other settings of the pool are kept.
    assert_eq!(pool(&s).block_size, 26);

    ipam.set_vxlan_mode("p", None).unwrap();
    assert_eq!(pool(&s).vxlan_mode_or(Encap::Vxlan), VxlanMode::Always);
    assert_eq!(pool(&s).vxlan_mode_or(Encap::None), VxlanMode::Never);

    assert!(matches!(
        ipam.set_vxlan_mode("nope", Some(VxlanMode::Never)),
        Err(Error::PoolNotFound(_))
    ));
}

#[test]
fn old_pool_records_without_a_mode_still_decode() {
    let p: IpPool =
        serde_json::from_str(r#"{"name":"x","cidr":"10.1.0.0/16","block_size":26}"#).unwrap();
    assert_eq!(p.vxlan_mode, None);
    let json = serde_json::to_value(IpPool {
        vxlan_mode: Some(VxlanMode::CrossSubnet),
        ..p
    })
    .unwrap();
    assert_eq!(json["vxlan_mode"], "CrossSubnet");
}
