//! Batches as the kernel receives them, incremental updates, drift.

use super::*;
use crate::netlink::attr::{find, messages, Msg};
use crate::netlink::consts::*;
use crate::netlink::encode::{encode_table, Obj};
use crate::netlink::update::encode_update;
use crate::summary::{drift, Summary};

fn msg_types(buf: &[u8]) -> Vec<u16> {
    messages(buf).iter().map(|m| m.ty).collect()
}

fn sample() -> Table {
    let mut t = table_with_sets();
    t.chains.push(Chain::base(
        "pre",
        BaseChain::nat(Hook::Prerouting, -100),
        vec![Rule::new(vec![Expr::vmap(
            &[Field::IpDaddr, Field::L4Proto, Field::ThDport],
            "svc",
        )])],
    ));
    t.chains.push(Chain::regular(
        "ep",
        vec![Rule::new(vec![Expr::NumgenVmap {
            targets: vec![Verdict::Return],
        }])
        .with_comment("c")],
    ));
    t
}

#[test]
fn a_batch_replaces_the_table_in_one_transaction() {
    let t = sample();
    let b = encode_table(&t, 100).expect("encode");
    let msgs = messages(&b.buf);
    assert_eq!(msgs.len(), b.len());
    let types = msg_types(&b.buf);
    let nft = |m| nft_type(m);
    assert_eq!(types[0], NFNL_MSG_BATCH_BEGIN);
    assert_eq!(msgs[0].payload, &[0, 0, 0, 10]); // res_id NFNL_SUBSYS_NFTABLES
    assert_eq!(
        &types[1..4],
        &[
            nft(NFT_MSG_NEWTABLE),
            nft(NFT_MSG_DELTABLE),
            nft(NFT_MSG_NEWTABLE)
        ]
    );
    assert_eq!(*types.last().expect("end"), NFNL_MSG_BATCH_END);
    for (i, m) in msgs.iter().enumerate() {
        assert_eq!(m.seq, 100 + i as u32);
        assert_eq!(
            m.flags & NLM_F_ACK,
            0,
            "no ACK asked: only errors come back"
        );
    }
    // Chains before sets before rules; each rule after its anonymous set.
    let order: Vec<u16> = types[4..types.len() - 1].iter().map(|t| t & 0xff).collect();
    assert_eq!(
        order,
        [
            NFT_MSG_NEWCHAIN,
            NFT_MSG_NEWCHAIN,
            NFT_MSG_NEWSET,
            NFT_MSG_NEWSETELEM,
            NFT_MSG_NEWSET,
            NFT_MSG_NEWSET,
            NFT_MSG_NEWSET,
            NFT_MSG_NEWRULE,
            NFT_MSG_NEWSET,
            NFT_MSG_NEWSETELEM,
            NFT_MSG_NEWRULE,
        ]
    );
    let rule = msgs
        .iter()
        .find(|m| m.ty == nft(NFT_MSG_NEWRULE))
        .expect("rule");
    assert_eq!(rule.flags, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND);
    assert_eq!(b.obj(100 + 11), Some(Obj::Rule { chain: 0, rule: 0 }));
    // The base chain: hook prerouting, priority -100 (big endian), type nat.
    let chain = &msgs[4];
    let hook = find(chain.attrs(), NFTA_CHAIN_HOOK).expect("hook");
    assert_eq!(
        find(hook.nested(), NFTA_HOOK_HOOKNUM).and_then(|a| a.u32_be()),
        Some(0)
    );
    assert_eq!(
        find(hook.nested(), NFTA_HOOK_PRIORITY).and_then(|a| a.u32_be()),
        Some(-100i32 as u32)
    );
    assert_eq!(
        find(chain.attrs(), NFTA_CHAIN_TYPE).and_then(|a| a.str()),
        Some("nat")
    );
    // The anonymous map of numgen gets a name of fixed width, and its rule the comment.
    let anon = msgs
        .iter()
        .filter(|m| m.ty == nft(NFT_MSG_NEWSET))
        .nth(4)
        .expect("anon");
    assert_eq!(
        find(anon.attrs(), NFTA_SET_NAME).and_then(|a| a.str()),
        Some("__map00000005")
    );
    assert_eq!(
        find(anon.attrs(), NFTA_SET_FLAGS).and_then(|a| a.u32_be()),
        Some(0xb)
    );
    let last_rule = msgs
        .iter()
        .rfind(|m| m.ty == nft(NFT_MSG_NEWRULE))
        .expect("rule");
    let ud = find(last_rule.attrs(), NFTA_RULE_USERDATA).expect("comment");
    assert_eq!(ud.data, &[0, 2, b'c', 0]);
}

#[test]
fn many_elements_are_split_into_bulk_messages() {
    let mut t = Table::new("weft");
    let n = 5000u32;
    t.maps.push(Map::verdicts(
        "big",
        KeyType::Concat(vec![
            KeyType::Ipv4Addr,
            KeyType::InetProto,
            KeyType::InetService,
        ]),
        (0..n)
            .map(|i| {
                (
                    Value::Concat(vec![
                        Value::Ipv4(Ipv4Addr::from(0x0a60_0000 + i)),
                        Value::Proto(6),
                        Value::Port(80),
                    ]),
                    Verdict::Accept,
                )
            })
            .collect(),
    ));
    let b = encode_table(&t, 1).expect("encode");
    let elem_msgs: Vec<Msg<'_>> = messages(&b.buf)
        .into_iter()
        .filter(|m| m.ty == nft_type(NFT_MSG_NEWSETELEM))
        .collect();
    assert!(
        elem_msgs.len() > 1 && elem_msgs.len() < 10,
        "{}",
        elem_msgs.len()
    );
    let mut total = 0;
    for m in &elem_msgs {
        let list = find(m.attrs(), NFTA_SET_ELEM_LIST_ELEMENTS).expect("elements");
        total += list.nested().count();
        assert!(m.payload.len() < 65_536);
    }
    assert_eq!(total, n as usize);
}

fn update_types(old: &Table, new: &Table) -> Option<Vec<u16>> {
    let b = encode_update(old, new, 1).expect("encode")?;
    Some(msg_types(&b.buf).iter().map(|t| t & 0xff).collect())
}

#[test]
fn updates_send_only_the_difference() {
    let old = sample();
    assert_eq!(update_types(&old, &old), Some(vec![0x10, 0x11]));

    let mut new = old.clone();
    new.chains[1].rules.push(Rule::new(vec![Expr::ret()]));
    assert_eq!(
        update_types(&old, &new),
        Some(vec![
            0x10,
            NFT_MSG_DELRULE,
            NFT_MSG_NEWSET,
            NFT_MSG_NEWSETELEM,
            NFT_MSG_NEWRULE,
            NFT_MSG_NEWRULE,
            0x11
        ])
    );

    let mut new = old.clone();
    new.maps[0].elements.push((
        Value::Concat(vec![
            Value::Ipv4(ip("10.96.0.1")),
            Value::Proto(6),
            Value::Port(80),
        ]),
        Data::Verdict(Verdict::Goto("ep".into())),
    ));
    assert_eq!(
        update_types(&old, &new),
        Some(vec![0x10, NFT_MSG_NEWSETELEM, 0x11])
    );
    // Changing that element's verdict: delete and add it again.
    let mut newer = new.clone();
    newer.maps[0].elements[0].1 = Data::Verdict(Verdict::Drop);
    assert_eq!(
        update_types(&new, &newer),
        Some(vec![0x10, NFT_MSG_DELSETELEM, NFT_MSG_NEWSETELEM, 0x11])
    );
    // Interval sets are flushed and refilled.
    let mut new = old.clone();
    new.sets[0].elements.push(net("192.168.0.0/16"));
    assert_eq!(
        update_types(&old, &new),
        Some(vec![0x10, NFT_MSG_DELSETELEM, NFT_MSG_NEWSETELEM, 0x11])
    );
    // A chain and a set that vanish; a chain that appears.
    let mut new = old.clone();
    new.chains.remove(1);
    new.chains[0].rules.clear();
    new.sets.clear();
    new.chains.push(Chain::regular("other", vec![]));
    assert_eq!(
        update_types(&old, &new),
        Some(vec![
            0x10,
            NFT_MSG_NEWCHAIN,
            NFT_MSG_DELRULE,
            NFT_MSG_DELRULE,
            NFT_MSG_DELCHAIN,
            NFT_MSG_DELSET,
            0x11
        ])
    );
    // A base chain or a set type that changes needs a full replace.
    let mut new = old.clone();
    new.chains[0].base = Some(BaseChain::nat(Hook::Prerouting, -90));
    assert_eq!(update_types(&old, &new), None);
    let mut new = old.clone();
    new.sets[0].key = KeyType::InetService;
    new.sets[0].elements.clear();
    assert_eq!(update_types(&old, &new), None);
}

#[test]
fn drift_lists_every_difference() {
    let t = sample();
    let model = Summary::of(&t).expect("summary");
    assert_eq!(model.rule_count(), 2);
    assert_eq!(model.chains["ep"].rules[0].exprs, ["numgen", "lookup"]);
    assert_eq!(model.sets["allowed"].elements, 1);
    assert!(drift(&model, &model).is_empty());

    let mut kernel = model.clone();
    kernel
        .chains
        .get_mut("ep")
        .expect("ep")
        .rules
        .push(Default::default());
    kernel.chains.remove("pre");
    kernel.chains.insert("extra".into(), Default::default());
    kernel.sets.get_mut("allowed").expect("allowed").elements = 7;
    kernel.sets.remove("svc");
    let d = drift(&model, &kernel);
    assert_eq!(
        d,
        [
            "chain ep: 1 rules expected, the kernel has 2",
            "chain pre is missing from the kernel",
            "chain extra in the kernel is not in the model",
            "set allowed: 1 elements expected, the kernel has 7",
            "set svc is missing from the kernel",
        ]
    );
}
