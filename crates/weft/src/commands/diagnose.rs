//! `weft trace` and `weft doctor`.

use anyhow::Result;
use weft_engine::Cluster;

use crate::cli::Format;
use crate::output::{emit, Table};

/// `weft trace FROM TO`: text for people, JSON/YAML for scripts; exit 1 when --verify differs.
pub(super) fn trace(c: &Cluster, fmt: Format, a: crate::cli::TraceArgs) -> Result<i32> {
    let opts = weft_trace::TraceOptions {
        proto: a.proto.parse()?,
        port: a.port,
        size: a.size,
        verify: a.verify,
    };
    if fmt == Format::Pcap && !a.verify {
        anyhow::bail!("-o pcap writes what --verify captures: add --verify");
    }
    if fmt == Format::Pcap && std::io::IsTerminal::is_terminal(&std::io::stdout()) {
        anyhow::bail!("-o pcap writes binary pcapng: redirect it to a file (> trace.pcapng)");
    }
    let t = weft_trace::trace(&c.lab, &a.from, &a.to, &opts)?;
    match fmt {
        Format::Table => print!("{}", weft_trace::render::text(&t)),
        Format::Svg => print!("{}", weft_trace::svg::svg(&t)),
        Format::Pcap => {
            let bytes = weft_trace::pcap::of_trace(&t).map_err(anyhow::Error::msg)?;
            std::io::Write::write_all(&mut std::io::stdout(), &bytes)?;
            eprint!("{}", weft_trace::render::text(&t));
        }
        _ => emit(fmt, &weft_trace::render::json(&t), || Table::new(&[]))?,
    }
    Ok(t.exit_code())
}

/// `weft doctor`: exit 1 when something was found.
pub(super) fn doctor(c: &Cluster, fmt: Format) -> Result<i32> {
    let r = weft_trace::doctor(&c.lab)?;
    match fmt {
        Format::Table | Format::Svg | Format::Pcap => print!("{}", r.text()),
        _ => emit(fmt, &r, || Table::new(&[]))?,
    }
    Ok(r.exit_code())
}
