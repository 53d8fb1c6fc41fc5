//! Reads a table back from the kernel (dumps of chains, rules, sets and set
//! elements) into a [`Summary`].

use super::attr::{find, Attr, Msg, Writer};
use super::consts::*;
use super::encode::{hook_of, kind_of, nfproto};
use super::kernel_error;
use super::socket::{NlError, Socket};
use crate::display::priority_text;
use crate::model::Family;
use crate::summary::{ChainSummary, RuleSummary, SetSummary, Summary};
use crate::{Error, Result};

fn dump_request<'a>(
    msg: u16,
    family: Family,
    attrs: &'a [(u16, &'a str)],
) -> impl Fn(&mut Writer, u32) + 'a {
    move |w: &mut Writer, seq: u32| {
        w.begin(
            nft_type(msg),
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
            nfproto(family),
            0,
        );
        for (ty, v) in attrs {
            w.put_str(*ty, v);
        }
        w.end();
    }
}

fn io_err(what: &str, table: &str, e: std::io::Error) -> Error {
    Error::io(format!("read {what}"), format!("table {table}"), e)
}

fn refused(what: &str, family: Family, table: &str, e: NlError) -> Error {
    kernel_error(
        &format!("read {what} of"),
        format!("table {} {table}", family.nft_name()),
        &e,
        None,
        None,
    )
}

/// Reads what table `family name` holds. `ENOENT` when it does not exist.
pub(crate) fn read(sock: &mut Socket, family: Family, name: &str) -> Result<Summary> {
    let mut s = Summary {
        family,
        name: name.to_string(),
        ..Summary::default()
    };
    // The table itself (a clear "not found" first).
    let req = sock
        .request(|w, seq| {
            w.begin(
                nft_type(NFT_MSG_GETTABLE),
                NLM_F_REQUEST | NLM_F_ACK,
                seq,
                nfproto(family),
                0,
            );
            w.put_str(NFTA_TABLE_NAME, name);
            w.end();
        })
        .map_err(|e| io_err("table", name, e))?;
    req.map_err(|e| refused("table", family, name, e))?;

    let mut chains: Vec<(String, ChainSummary)> = Vec::new();
    sock.dump(
        &dump_request(NFT_MSG_GETCHAIN, family, &[(NFTA_CHAIN_TABLE, name)]),
        &mut |m: Option<&Msg<'_>>| match m {
            None => chains.clear(),
            Some(m) => chains.extend(parse_chain(m, name)),
        },
    )
    .map_err(|e| io_err("chains", name, e))?
    .map_err(|e| refused("chains", family, name, e))?;
    s.chains = chains.into_iter().collect();

    let mut rules: Vec<(String, RuleSummary)> = Vec::new();
    sock.dump(
        &dump_request(NFT_MSG_GETRULE, family, &[(NFTA_RULE_TABLE, name)]),
        &mut |m: Option<&Msg<'_>>| match m {
            None => rules.clear(),
            Some(m) => rules.extend(parse_rule(m, name)),
        },
    )
    .map_err(|e| io_err("rules", name, e))?
    .map_err(|e| refused("rules", family, name, e))?;
    for (chain, r) in rules {
        s.chains.entry(chain).or_default().rules.push(r);
    }

    let mut sets: Vec<(String, SetSummary)> = Vec::new();
    sock.dump(
        &dump_request(NFT_MSG_GETSET, family, &[(NFTA_SET_TABLE, name)]),
        &mut |m: Option<&Msg<'_>>| match m {
            None => sets.clear(),
            Some(m) => sets.extend(parse_set(m, name)),
        },
    )
    .map_err(|e| io_err("sets", name, e))?
    .map_err(|e| refused("sets", family, name, e))?;
    for (set, mut summary) in sets {
        let mut count = 0usize;
        sock.dump(
            &dump_request(
                NFT_MSG_GETSETELEM,
                family,
                &[
                    (NFTA_SET_ELEM_LIST_TABLE, name),
                    (NFTA_SET_ELEM_LIST_SET, &set),
                ],
            ),
            &mut |m: Option<&Msg<'_>>| match m {
                None => count = 0,
                Some(m) => count += count_elements(m),
            },
        )
        .map_err(|e| io_err("set elements", name, e))?
        .map_err(|e| refused(&format!("elements of set {set}"), family, name, e))?;
        summary.elements = count;
        s.sets.insert(set, summary);
    }
    Ok(s)
}

fn str_attr(m: &Msg<'_>, ty: u16) -> Option<String> {
    find(m.attrs(), ty).and_then(|a| a.str().map(str::to_string))
}

fn parse_chain(m: &Msg<'_>, table: &str) -> Option<(String, ChainSummary)> {
    if str_attr(m, NFTA_CHAIN_TABLE)? != table {
        return None;
    }
    let name = str_attr(m, NFTA_CHAIN_NAME)?;
    let base = find(m.attrs(), NFTA_CHAIN_HOOK).map(|hook: Attr<'_>| {
        let num = find(hook.nested(), NFTA_HOOK_HOOKNUM)
            .and_then(|a| a.u32_be())
            .unwrap_or(u32::MAX);
        let prio = find(hook.nested(), NFTA_HOOK_PRIORITY)
            .and_then(|a| a.u32_be())
            .unwrap_or(0) as i32;
        let policy = find(m.attrs(), NFTA_CHAIN_POLICY).and_then(|a| a.u32_be());
        let kind = str_attr(m, NFTA_CHAIN_TYPE).unwrap_or_default();
        let policy = match policy {
            Some(NF_ACCEPT) => "accept".to_string(),
            Some(NF_DROP) => "drop".to_string(),
            other => format!("{other:?}"),
        };
        let kind = kind_of(&kind)
            .map(|k| k.nft_name().to_string())
            .unwrap_or(kind);
        match hook_of(num) {
            Some(h) => format!(
                "type {kind} hook {} priority {}; policy {policy};",
                h.nft_name(),
                priority_text(h, prio)
            ),
            None => format!("type {kind} hook {num} priority {prio}; policy {policy};"),
        }
    });
    Some((
        name,
        ChainSummary {
            base,
            rules: Vec::new(),
        },
    ))
}

fn parse_rule(m: &Msg<'_>, table: &str) -> Option<(String, RuleSummary)> {
    if str_attr(m, NFTA_RULE_TABLE)? != table {
        return None;
    }
    let chain = str_attr(m, NFTA_RULE_CHAIN)?;
    let exprs = find(m.attrs(), NFTA_RULE_EXPRESSIONS)
        .map(|list| {
            list.nested()
                .filter_map(|el| {
                    find(el.nested(), NFTA_EXPR_NAME).and_then(|a| a.str().map(str::to_string))
                })
                .collect()
        })
        .unwrap_or_default();
    let comment = find(m.attrs(), NFTA_RULE_USERDATA).and_then(|a| comment_of(a.data));
    Some((chain, RuleSummary { exprs, comment }))
}

/// The comment in nft's rule user data (TLVs of type, length, value).
fn comment_of(mut ud: &[u8]) -> Option<String> {
    while ud.len() >= 2 {
        let (ty, len) = (ud[0], ud[1] as usize);
        let value = ud.get(2..2 + len)?;
        if ty == UDATA_RULE_COMMENT {
            let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
            return std::str::from_utf8(&value[..end]).ok().map(str::to_string);
        }
        ud = &ud[2 + len..];
    }
    None
}

fn parse_set(m: &Msg<'_>, table: &str) -> Option<(String, SetSummary)> {
    if str_attr(m, NFTA_SET_TABLE)? != table {
        return None;
    }
    let name = str_attr(m, NFTA_SET_NAME)?;
    let u = |ty| find(m.attrs(), ty).and_then(|a| a.u32_be());
    let flags = u(NFTA_SET_FLAGS).unwrap_or(0);
    if flags & crate::compile::set::SET_ANONYMOUS != 0 {
        return None;
    }
    let dynamic = flags & crate::compile::set::SET_EVAL != 0;
    // Flags the kernel may add on its own (timeouts, eval, expressions) are not compared.
    let flags = flags & 0x8f;
    Some((
        name,
        SetSummary {
            flags,
            dynamic,
            key_type: u(NFTA_SET_KEY_TYPE).unwrap_or(0),
            key_len: u(NFTA_SET_KEY_LEN).unwrap_or(0),
            data_type: u(NFTA_SET_DATA_TYPE),
            elements: 0,
        },
    ))
}

/// The elements of set `set` of table `table` (each key as the kernel holds it,
/// and the milliseconds it has left; elements without a timeout are left out).
pub(crate) fn expiring_elements(
    sock: &mut Socket,
    family: Family,
    table: &str,
    set: &str,
) -> Result<Vec<(Vec<u8>, u64)>> {
    let mut out = Vec::new();
    sock.dump(
        &dump_request(
            NFT_MSG_GETSETELEM,
            family,
            &[
                (NFTA_SET_ELEM_LIST_TABLE, table),
                (NFTA_SET_ELEM_LIST_SET, set),
            ],
        ),
        &mut |m: Option<&Msg<'_>>| match m {
            None => out.clear(),
            Some(m) => {
                let Some(list) = find(m.attrs(), NFTA_SET_ELEM_LIST_ELEMENTS) else {
                    return;
                };
                for el in list.nested() {
                    let key = find(el.nested(), NFTA_SET_ELEM_KEY)
                        .and_then(|k| find(k.nested(), NFTA_DATA_VALUE))
                        .map(|v| v.data.to_vec());
                    let left = find(el.nested(), NFTA_SET_ELEM_EXPIRATION)
                        .and_then(|a| Some(u64::from_be_bytes(a.data.get(..8)?.try_into().ok()?)));
                    if let (Some(k), Some(ms)) = (key, left) {
                        out.push((k, ms));
                    }
                }
            }
        },
    )
    .map_err(|e| io_err("set elements", table, e))?
    .map_err(|e| refused(&format!("elements of set {set}"), family, table, e))?;
    Ok(out)
}

/// Elements in a GETSETELEM reply, interval ends not counted.
fn count_elements(m: &Msg<'_>) -> usize {
    let Some(list) = find(m.attrs(), NFTA_SET_ELEM_LIST_ELEMENTS) else {
        return 0;
    };
    list.nested()
        .filter(|el| {
            let flags = find(el.nested(), NFTA_SET_ELEM_FLAGS)
                .and_then(|a| a.u32_be())
                .unwrap_or(0);
            flags & NFT_SET_ELEM_INTERVAL_END == 0
        })
        .count()
}
