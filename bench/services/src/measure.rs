//! The measurements: full programming, one service's update, new-connection latency; weft and
//! the iptables-shaped anchors side by side.

use std::time::Instant;

use anyhow::{Context, Result};
use weft_agent::Nft;
use weft_bench_common::iptables::Flavor;
use weft_bench_common::ms;
use weft_bench_common::report::Report;
use weft_dataplane::{rules, ClusterState, StateCache};
use weft_netlink::Handle;
use weft_nft::{Backend, Family, NetlinkBackend};
use weft_store::Op;

use crate::kubeproxy::{self, Place};
use crate::latency;
use crate::world::{self, World, NODE, PORT};
use crate::{Args, Scale};

/// A latency variant: its name, its scale's index, and the anchor (None: weft).
type Variant = (String, usize, Option<(Flavor, Place)>);

pub struct Bench<'a> {
    w: &'a World,
    flavors: Vec<Flavor>,
    h: Handle,
    nft: Nft,
    raw: NetlinkBackend,
}

impl<'a> Bench<'a> {
    pub fn new(w: &'a World, flavors: &[Flavor]) -> Result<Bench<'a>> {
        Ok(Bench {
            w,
            flavors: flavors.to_vec(),
            h: Handle::in_netns(&w.node.ns)?,
            nft: Nft::in_netns(&w.node.ns)?,
            raw: NetlinkBackend::in_netns(&w.node.ns)?,
        })
    }

    fn ns_name(&self) -> &str {
        &self.w.node.ns_name
    }

    /// Empties the nat table of every flavor; iptables-nft's table goes altogether.
    fn clear_iptables(&mut self) -> Result<()> {
        for f in &self.flavors {
            if *f == Flavor::Legacy {
                f.restore(&self.w.node.ns_name, &kubeproxy::empty())?;
            }
        }
        self.raw.delete(Family::Ip, "nat")?;
        Ok(())
    }

    /// No weft table, no iptables rules.
    pub fn clear(&mut self) -> Result<()> {
        self.clear_iptables()?;
        self.raw.delete(Family::Inet, rules::TABLE)?;
        self.nft.forget();
        Ok(())
    }

    /// From a store holding every service to the rules in the kernel.
    pub fn full_programming(&mut self, s: &Scale, a: &Args, rep: &mut Report) -> Result<()> {
        let n = s.services;
        let store = s.store.as_ref();
        let rounds = a.rounds_at(n);
        eprintln!("full programming at {n} services, {rounds} rounds …");
        self.clear()?;
        let (mut pass, mut load, mut compute, mut program) = (vec![], vec![], vec![], vec![]);
        for _ in 0..rounds {
            self.raw.delete(Family::Inet, rules::TABLE)?;
            self.nft.forget();
            let t = Instant::now();
            weft_agent::reconcile(store, &mut self.h, &mut self.nft, NODE)?;
            pass.push(ms(t.elapsed()));
            // The same pass in parts.
            self.raw.delete(Family::Inet, rules::TABLE)?;
            let t = Instant::now();
            let st = ClusterState::load(store)?;
            load.push(ms(t.elapsed()));
            let t = Instant::now();
            let table = rules::ruleset(&rules::RulesInput::from_state(NODE, &st));
            compute.push(ms(t.elapsed()));
            let t = Instant::now();
            self.raw.apply(&table)?;
            program.push(ms(t.elapsed()));
        }
        rep.series(
            &format!("full programming, weft agent pass ({n} services)"),
            "ms",
            &pass,
        );
        rep.series(&format!("  of which: read the store ({n})"), "ms", &load);
        rep.series(
            &format!("  of which: compute the table ({n})"),
            "ms",
            &compute,
        );
        rep.series(
            &format!("  of which: program the kernel ({n})"),
            "ms",
            &program,
        );
        self.clear()?;
        for f in self.flavors.clone() {
            let mut restore = vec![];
            for _ in 0..rounds {
                self.clear_iptables()?;
                let t = Instant::now();
                let st = ClusterState::load(store)?;
                let (text, _) = kubeproxy::ruleset(&st, Place::End);
                f.restore(self.ns_name(), &text)?;
                restore.push(ms(t.elapsed()));
            }
            rep.series(
                &format!(
                    "full programming, iptables-shaped: read + render + {}-restore ({n})",
                    f.name()
                ),
                "ms",
                &restore,
            );
        }
        self.clear()
    }

    /// One service's update: an endpoint added to (then removed from) a service in the middle.
    pub fn updates(&mut self, s: &Scale, a: &Args, rep: &mut Report) -> Result<()> {
        let n = s.services;
        let store = s.store.as_ref();
        let updates = if n > 10_000 {
            a.updates.min(10)
        } else {
            a.updates
        };
        eprintln!("updates at {n} services, {updates} of them …");
        let (key, value) = world::extra_endpoint(n / 2);
        let toggle = |i: usize| -> Result<()> {
            let op = if i.is_multiple_of(2) {
                Op::Put(key.clone(), value.clone())
            } else {
                Op::Delete(key.clone())
            };
            store
                .txn(&[], &[op])
                .context("add or remove the extra endpoint")?;
            Ok(())
        };
        self.clear()?;
        // The running agent's way: state kept current from the watch, the table's difference.
        let mut cache = StateCache::load(store)?;
        let mut watch = store.watch("/weft/", cache.revision())?;
        weft_agent::reconcile_cached(
            store,
            &mut self.h,
            &mut self.nft,
            NODE,
            &mut cache,
            watch.as_mut(),
        )?;
        let (mut put, mut pass) = (vec![], vec![]);
        for i in 0..updates {
            let t = Instant::now();
            toggle(i)?;
            put.push(ms(t.elapsed()));
            let t = Instant::now();
            weft_agent::reconcile_cached(
                store,
                &mut self.h,
                &mut self.nft,
                NODE,
                &mut cache,
                watch.as_mut(),
            )?;
            pass.push(ms(t.elapsed()));
        }
        // The same in parts, on the raw backend: catch the cache up, compute the changed
        // parts, send their difference.
        let (mut events, mut compute, mut diff) = (vec![], vec![], vec![]);
        let _ = cache.take_changes();
        let (mut prog, table) =
            rules::Programmed::full(&rules::RulesInput::from_state(NODE, cache.state()));
        self.raw.apply(&table)?;
        drop(table);
        for i in 0..updates {
            toggle(i)?;
            let t = Instant::now();
            loop {
                let ev = watch.next(std::time::Duration::ZERO)?;
                if ev.is_empty() {
                    break;
                }
                cache.apply(&ev)?;
            }
            let changes = cache.take_changes();
            events.push(ms(t.elapsed()));
            let t = Instant::now();
            let step = prog
                .step(
                    &rules::RulesInput::from_state(NODE, cache.state()),
                    &changes,
                )
                .context("an incremental step")?;
            compute.push(ms(t.elapsed()));
            let t = Instant::now();
            self.raw.update_part(&step.old, &step.new)?;
            diff.push(ms(t.elapsed()));
            prog.commit(step);
        }
        rep.series(
            &format!("one update: write the endpoint into the store ({n})"),
            "ms",
            &put,
        );
        rep.series(
            &format!("one update: weft agent pass (watch, changed parts) ({n})"),
            "ms",
            &pass,
        );
        rep.series(
            &format!("  update, of which: apply the watch events to the state ({n})"),
            "ms",
            &events,
        );
        rep.series(
            &format!("  update, of which: compute the changed parts ({n})"),
            "ms",
            &compute,
        );
        rep.series(
            &format!("  update, of which: send their difference to the kernel ({n})"),
            "ms",
            &diff,
        );
        self.clear()?;
        // kube-proxy's way: render the whole changed ruleset and restore it.
        for f in self.flavors.clone() {
            f.restore(self.ns_name(), s.ipt(Place::End))?;
            let mut restore = vec![];
            for i in 0..updates.min(a.rounds_at(n)) {
                toggle(i)?;
                loop {
                    let ev = watch.next(std::time::Duration::ZERO)?;
                    if ev.is_empty() {
                        break;
                    }
                    cache.apply(&ev)?;
                }
                let t = Instant::now();
                let (text, _) = kubeproxy::ruleset(cache.state(), Place::End);
                f.restore(self.ns_name(), &text)?;
                restore.push(ms(t.elapsed()));
            }
            rep.series(
                &format!(
                    "one update, iptables-shaped: render + {}-restore of the changed ruleset ({n})",
                    f.name()
                ),
                "ms",
                &restore,
            );
            self.clear_iptables()?;
        }
        // Leave the store as it was.
        if store.get(&key)?.is_some() {
            store.txn(&[], &[Op::Delete(key)])?;
        }
        self.clear()
    }

    /// Loads one variant's rules (and nothing else) into the node.
    fn load(&mut self, s: &Scale, v: Option<(Flavor, Place)>) -> Result<()> {
        self.clear_iptables()?;
        match v {
            None => {
                self.raw.apply(&s.table)?;
            }
            Some((f, place)) => {
                self.raw.delete(Family::Inet, rules::TABLE)?;
                f.restore(self.ns_name(), s.ipt(place))?;
            }
        }
        Ok(())
    }

    /// New-connection latency through the service under test's ClusterIP, every variant at
    /// every scale, interleaved round by round (the first variant rotating).
    pub fn latency(&mut self, scales: &[Scale], a: &Args, rep: &mut Report) -> Result<()> {
        let mut variants: Vec<Variant> = vec![];
        for (i, s) in scales.iter().enumerate() {
            variants.push((format!("weft, {} services", s.services), i, None));
            for f in &self.flavors {
                for place in [Place::End, Place::Middle] {
                    variants.push((
                        format!(
                            "{}-shaped, {} services, service at the {}",
                            f.name(),
                            s.services,
                            place.name()
                        ),
                        i,
                        Some((*f, place)),
                    ));
                }
            }
        }
        let (mut p50, mut p99) = (vec![vec![]; variants.len()], vec![vec![]; variants.len()]);
        eprintln!(
            "latency: {} rounds of {} variants, {} connections each …",
            a.lat_rounds,
            variants.len(),
            a.samples
        );
        let client = self.w.client();
        for round in 0..a.lat_rounds {
            for j in 0..variants.len() {
                let v = (j + round) % variants.len();
                let (name, si, variant) = &variants[v];
                let s = &scales[*si];
                self.load(s, *variant)?;
                let ip = world::cluster_ip(s.services - 1);
                latency::check(&client.ns, ip, PORT).with_context(|| format!("variant {name}"))?;
                let r = latency::measure(&client.ns, ip, PORT, a.samples)?;
                if r.failed > 0 {
                    rep.note(format!("{name}: {} connections failed", r.failed));
                }
                p50[v].push(r.quantile(0.5));
                p99[v].push(r.quantile(0.99));
            }
        }
        self.clear()?;
        for (v, (name, _, _)) in variants.iter().enumerate() {
            rep.series(&format!("connect + first byte p50, {name}"), "µs", &p50[v]);
        }
        for (v, (name, _, _)) in variants.iter().enumerate() {
            rep.series(&format!("connect + first byte p99, {name}"), "µs", &p99[v]);
        }
        let names: Vec<String> = variants.iter().map(|v| v.0.clone()).collect();
        let weft_of = |si: usize| variants.iter().position(|v| v.1 == si && v.2.is_none());
        if let (Some(big), Some(small)) = (weft_of(scales.len() - 1), weft_of(0)) {
            if big != small {
                rep.ratio_of("p50", &names, &p50, big, small);
            }
        }
        for (v, (_, si, variant)) in variants.iter().enumerate() {
            if variant.is_some() {
                if let Some(wv) = weft_of(*si) {
                    rep.ratio_of("p50", &names, &p50, v, wv);
                }
            }
        }
        Ok(())
    }
}
