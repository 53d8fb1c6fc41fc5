//! `-o pcap`: the frames `--verify` captured, every hop's interface in one pcapng file (one
//! interface description per capture point, named and commented with its namespace), readable
//! by tcpdump, tshark and Wireshark. Format: IETF draft-ietf-opsawg-pcapng (little endian).

use crate::model::Trace;
use crate::verify::Capture;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 0x0000_0001;
const EPB: u32 = 0x0000_0006;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;
const LINKTYPE_ETHERNET: u16 = 1;
const SNAPLEN: u32 = 65535;
const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
const EPB_FLAGS: u16 = 2;

fn pad4(n: usize) -> usize {
    (4 - n % 4) % 4
}

fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
    out.extend(std::iter::repeat_n(0u8, pad4(value.len())));
}

fn end_options(out: &mut Vec<u8>) {
    out.extend_from_slice(&OPT_END.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
}

/// A block: type, total length, body, total length again.
fn block(out: &mut Vec<u8>, ty: u32, body: &[u8]) {
    let len = (12 + body.len()) as u32;
    out.extend_from_slice(&ty.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&len.to_le_bytes());
}

/// The pcapng file of a capture; `comment` goes into the section header.
pub fn pcapng(c: &Capture, comment: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut b = Vec::new();
    b.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&(-1i64).to_le_bytes()); // section length unknown
    option(&mut b, OPT_COMMENT, comment.as_bytes());
    end_options(&mut b);
    block(&mut out, SHB, &b);
    for (name, member) in &c.interfaces {
        let mut b = Vec::new();
        b.extend_from_slice(&LINKTYPE_ETHERNET.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&SNAPLEN.to_le_bytes());
        option(&mut b, IF_NAME, name.as_bytes());
        option(
            &mut b,
            OPT_COMMENT,
            format!("{name} in {member}").as_bytes(),
        );
        option(&mut b, IF_TSRESOL, &[6]); // microseconds
        end_options(&mut b);
        block(&mut out, IDB, &b);
    }
    for (iface, outgoing, at_us, frame) in &c.frames {
        let mut b = Vec::new();
        b.extend_from_slice(&(*iface as u32).to_le_bytes());
        b.extend_from_slice(&((at_us >> 32) as u32).to_le_bytes());
        b.extend_from_slice(&(*at_us as u32).to_le_bytes());
        b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        b.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        b.extend_from_slice(frame);
        b.extend(std::iter::repeat_n(0u8, pad4(frame.len())));
        // Direction: 1 inbound, 2 outbound (bits 0-1 of the flags word).
        option(
            &mut b,
            EPB_FLAGS,
            &(if *outgoing { 2u32 } else { 1u32 }).to_le_bytes(),
        );
        end_options(&mut b);
        block(&mut out, EPB, &b);
    }
    out
}

/// The pcapng file of a trace's verification, or why there is none.
pub fn of_trace(t: &Trace) -> Result<Vec<u8>, String> {
    let Some(v) = &t.verify else {
        return Err("-o pcap writes what --verify captured: add --verify".into());
    };
    let comment = format!(
        "weft trace {} -> {} ({}) in lab {}",
        t.from.spec, t.to.spec, t.proto, t.lab
    );
    Ok(pcapng(&v.capture, &comment))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_are_aligned_and_sized() {
        let c = Capture {
            interfaces: vec![
                ("eth0".into(), "node n1".into()),
                ("cali1".into(), "node n1".into()),
            ],
            frames: vec![(1, true, 1_700_000_000_000_001, vec![0xaa; 61])],
        };
        let f = pcapng(&c, "test");
        assert_eq!(&f[0..4], &SHB.to_le_bytes());
        // Walk the blocks: each length is a multiple of 4, repeated at its end.
        let (mut at, mut kinds) = (0, vec![]);
        while at < f.len() {
            let ty = u32::from_le_bytes(f[at..at + 4].try_into().unwrap());
            let len = u32::from_le_bytes(f[at + 4..at + 8].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0);
            let end = u32::from_le_bytes(f[at + len - 4..at + len].try_into().unwrap()) as usize;
            assert_eq!(end, len);
            kinds.push(ty);
            at += len;
        }
        assert_eq!(kinds, [SHB, IDB, IDB, EPB]);
    }
}
