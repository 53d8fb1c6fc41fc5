//! The devices controller of cgroup v2: an eBPF program of type `BPF_PROG_TYPE_CGROUP_DEVICE`
//! attached to the container's cgroup, which the kernel runs on every mknod and open of a
//! device node by the cgroup's processes (v2 has no `devices.allow` file).
//!
//! The program is made from the same rules as v1's files: deny everything, then the spec's
//! `linux.resources.devices` in order, then the devices every container may use. As in
//! runc's filter, the last rule that matches an access decides it, and an access no rule
//! matches is denied. A rule matches when the device's type (unless `a`), major and minor
//! (unless `*`) are the rule's and the access asked for (one of read, write, mknod) is among
//! the rule's.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use super::resources::DeviceRule;

/// `struct bpf_insn`: opcode, destination and source registers, offset, immediate.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Insn {
    code: u8,
    regs: u8,
    off: i16,
    imm: i32,
}

impl Insn {
    const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: (src << 4) | dst,
            off,
            imm,
        }
    }
}

// Opcodes (linux/bpf_common.h, linux/bpf.h).
/// `dst = *(u32 *)(src + off)`
const LDX_W: u8 = 0x61;
/// `dst &= imm` (64-bit)
const AND_K: u8 = 0x57;
/// `dst >>= imm` (64-bit)
const RSH_K: u8 = 0x77;
/// `dst = src` (64-bit)
const MOV_X: u8 = 0xbf;
/// `dst = imm` (64-bit)
const MOV_K: u8 = 0xb7;
/// `if dst != imm goto pc + off`
const JNE_K: u8 = 0x55;
const EXIT: u8 = 0x95;

// `struct bpf_cgroup_dev_ctx`: access_type (type in the low 16 bits, access above), major,
// minor.
const DEV_BLOCK: i32 = 1;
const DEV_CHAR: i32 = 2;
const ACC_MKNOD: i32 = 1;
const ACC_READ: i32 = 2;
const ACC_WRITE: i32 = 4;

// Registers: r1 the context; r2 the type, r3 the access, r4 the major, r5 the minor; r0 the
// scratch register and the verdict.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;

fn access_bits(access: &str) -> i32 {
    access.chars().fold(0, |b, c| match c {
        'r' => b | ACC_READ,
        'w' => b | ACC_WRITE,
        'm' => b | ACC_MKNOD,
        _ => b,
    })
}

/// The program for `rules` (in order: later rules override earlier ones); no rule matching
/// means deny.
pub(crate) fn program(rules: &[DeviceRule]) -> Vec<Insn> {
    let mut p = vec![
        Insn::new(LDX_W, R2, R1, 0, 0),
        Insn::new(AND_K, R2, 0, 0, 0xffff),
        Insn::new(LDX_W, R3, R1, 0, 0),
        Insn::new(RSH_K, R3, 0, 0, 16),
        Insn::new(LDX_W, R4, R1, 4, 0),
        Insn::new(LDX_W, R5, R1, 8, 0),
    ];
    // The last rule is tried first: the first match (from the end) decides.
    for r in rules.iter().rev() {
        let mut checks: Vec<Insn> = vec![];
        match r.kind {
            'c' => checks.push(Insn::new(JNE_K, R2, 0, 0, DEV_CHAR)),
            'b' => checks.push(Insn::new(JNE_K, R2, 0, 0, DEV_BLOCK)),
            _ => {}
        }
        // The access asked for must be among the rule's: nothing outside them is set.
        let outside = 0x7 & !access_bits(&r.access);
        if outside != 0 {
            checks.push(Insn::new(MOV_X, R0, R3, 0, 0));
            checks.push(Insn::new(AND_K, R0, 0, 0, outside));
            checks.push(Insn::new(JNE_K, R0, 0, 0, 0));
        }
        if r.kind != 'a' {
            if let Some(m) = r.major {
                checks.push(Insn::new(JNE_K, R4, 0, 0, m as i32));
            }
            if let Some(m) = r.minor {
                checks.push(Insn::new(JNE_K, R5, 0, 0, m as i32));
            }
        }
        // Each jump skips to the end of this rule's block: past the checks after it and
        // the two instructions of the verdict.
        let n = checks.len();
        for (i, c) in checks.iter_mut().enumerate() {
            if c.code == JNE_K {
                c.off = (n - i - 1 + 2) as i16;
            }
        }
        let unconditional = checks.is_empty();
        p.extend(checks);
        p.push(Insn::new(MOV_K, R0, 0, 0, i32::from(r.allow)));
        p.push(Insn::new(EXIT, 0, 0, 0, 0));
        if unconditional {
            // It matches every access: the rules before it are never reached (and the
            // kernel's verifier refuses unreachable instructions).
            return p;
        }
    }
    p.push(Insn::new(MOV_K, R0, 0, 0, 0));
    p.push(Insn::new(EXIT, 0, 0, 0, 0));
    p
}

/// The verdict of `prog` for an access, computed as the kernel would (for tests).
#[cfg(test)]
pub(crate) fn run(prog: &[Insn], kind: char, major: u32, minor: u32, access: char) -> bool {
    let typ = match kind {
        'b' => DEV_BLOCK,
        _ => DEV_CHAR,
    } as u64;
    let acc = access_bits(&access.to_string()) as u64;
    let ctx = [(acc << 16) | typ, u64::from(major), u64::from(minor)];
    let mut r = [0u64; 6];
    let mut pc = 0usize;
    loop {
        let i = prog[pc];
        let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
        pc += 1;
        match i.code {
            LDX_W => r[dst] = ctx[i.off as usize / 4],
            AND_K => r[dst] &= i.imm as i64 as u64,
            RSH_K => r[dst] >>= i.imm,
            MOV_X => r[dst] = r[src],
            MOV_K => r[dst] = i.imm as i64 as u64,
            JNE_K if r[dst] != i.imm as i64 as u64 => pc += i.off as usize,
            JNE_K => {}
            EXIT => return r[0] == 1,
            c => panic!("opcode {c:#x}"),
        }
    }
}

// bpf(2) commands and constants.
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
/// Other programs may be attached to the same cgroup and to its descendants (a container
/// that runs systemd attaches its own); every one of them must allow an access.
const BPF_F_ALLOW_MULTI: u32 = 2;

/// The head of `union bpf_attr` for BPF_PROG_LOAD.
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
}

/// The head of `union bpf_attr` for BPF_PROG_ATTACH.
#[repr(C)]
struct ProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised bpf_attr head of the size passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if r < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// Loads the program for `rules` and attaches it to the cgroup directory `dir`. The cgroup
/// keeps the program: it goes when the cgroup is removed.
pub(crate) fn attach(dir: &Path, rules: &[DeviceRule]) -> Result<(), String> {
    let fail = |what: &str, e: std::io::Error| {
        format!(
            "cgroup v2 device filter for {}: {what}: {e} (the kernel needs CONFIG_CGROUP_BPF, and \
             weft needs CAP_SYS_ADMIN, to restrict the container's devices)",
            dir.display()
        )
    };
    // A directory that is not on cgroup2 (the unit tests' fake hierarchies) has no device
    // hook to attach to; a real v2 layout always is.
    match nix::sys::statfs::statfs(dir) {
        Ok(fs) if fs.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC => {}
        Ok(_) => return Ok(()),
        Err(e) => return Err(fail("statfs", e.into())),
    }
    let prog = program(rules);
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"weft_device");
    let mut log = vec![0u8; 64 * 1024];
    let mut load = ProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: prog.len() as u32,
        insns: prog.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        prog_name: name,
        ..ProgLoad::default()
    };
    let fd = bpf(BPF_PROG_LOAD, &mut load).map_err(|e| {
        let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
        let verifier = String::from_utf8_lossy(&log[..end]);
        fail(
            &format!("load the eBPF program (verifier: {})", verifier.trim()),
            e,
        )
    })?;
    // SAFETY: BPF_PROG_LOAD returned a new file descriptor that nothing else owns.
    let prog_fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    let cgroup = std::fs::File::open(dir).map_err(|e| fail("open the cgroup", e))?;
    let mut at = ProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog_fd.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
    };
    bpf(BPF_PROG_ATTACH, &mut at).map_err(|e| fail("attach the eBPF program", e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cgroups::resources::device_rules;

    fn rule(
        allow: bool,
        kind: char,
        major: Option<i64>,
        minor: Option<i64>,
        access: &str,
    ) -> DeviceRule {
        DeviceRule {
            allow,
            kind,
            major,
            minor,
            access: access.into(),
        }
    }

    fn container_rules(spec: Vec<DeviceRule>) -> Vec<DeviceRule> {
        device_rules(&spec)
    }

    #[test]
    fn the_defaults_allow_the_usual_devices_and_deny_the_rest() {
        let p = program(&container_rules(vec![]));
        assert!(
            run(&p, 'c', 1, 3, 'r') && run(&p, 'c', 1, 3, 'w'),
            "/dev/null"
        );
        assert!(run(&p, 'c', 136, 7, 'w'), "a pty slave");
        assert!(run(&p, 'c', 10, 200, 'r'), "/dev/net/tun");
        assert!(!run(&p, 'c', 10, 229, 'r'), "/dev/fuse");
        assert!(!run(&p, 'b', 8, 0, 'r'), "a disk");
        assert!(!run(&p, 'b', 8, 0, 'w'), "a disk");
        assert!(
            run(&p, 'b', 8, 0, 'm'),
            "mknod of anything is allowed, opening is not"
        );
    }

    #[test]
    fn later_rules_override_earlier_ones_and_access_must_be_covered() {
        let p = program(&container_rules(vec![
            rule(true, 'c', Some(10), Some(229), "r"),
            rule(true, 'b', Some(8), None, "rwm"),
            rule(false, 'b', Some(8), Some(1), "w"),
        ]));
        assert!(run(&p, 'c', 10, 229, 'r'), "fuse readable");
        assert!(!run(&p, 'c', 10, 229, 'w'), "but not writable");
        assert!(run(&p, 'b', 8, 0, 'w'), "sda writable");
        assert!(
            !run(&p, 'b', 8, 1, 'w'),
            "sda1 denied for writing by the later rule"
        );
        assert!(run(&p, 'b', 8, 1, 'r'), "sda1 still readable");
        assert!(!run(&p, 'c', 8, 0, 'r'), "the type counts");
    }

    #[test]
    fn allow_all_allows_everything_and_no_rule_denies_everything() {
        let p = program(&container_rules(vec![rule(true, 'a', None, None, "rwm")]));
        assert!(run(&p, 'b', 8, 0, 'w') && run(&p, 'c', 10, 229, 'r'));
        let p = program(&[]);
        assert!(!run(&p, 'c', 1, 3, 'r'));
    }

    #[test]
    fn the_kernel_accepts_the_program_and_enforces_it() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipping: needs root");
            return;
        }
        let mounts = crate::cgroups::mountinfo::find();
        let Some(m) = mounts.iter().find(|m| m.v2) else {
            eprintln!("skipping: no cgroup2 mount here");
            return;
        };
        let tmp = tempfile::tempdir().expect("tempdir");
        let fuse = crate::cgroups::tests::mknod_fuse(tmp.path());
        if std::fs::File::open(&fuse).is_err() {
            eprintln!("skipping: /dev/fuse cannot be opened here at all");
            return;
        }
        let dir = m
            .mountpoint
            .join(format!("weft-bpf-{}", std::process::id()));
        std::fs::create_dir(&dir).expect("mkdir cgroup");
        let cleanup = scopeguard(&dir);
        attach(&dir, &container_rules(vec![])).expect("attach");
        let procs = std::fs::File::options()
            .write(true)
            .open(dir.join("cgroup.procs"))
            .expect("open cgroup.procs");
        // SAFETY: the child only makes syscalls and exits.
        match unsafe { nix::unistd::fork() }.expect("fork") {
            nix::unistd::ForkResult::Child => {
                use std::io::Write;
                let joined = (&procs).write_all(b"0").is_ok();
                let null = std::fs::File::open("/dev/null").is_ok();
                let fuse = std::fs::File::open(&fuse).is_ok();
                let code = if joined {
                    i32::from(null) | (i32::from(fuse) << 1)
                } else {
                    4
                };
                unsafe { libc::_exit(code) };
            }
            nix::unistd::ForkResult::Parent { child } => {
                let st = nix::sys::wait::waitpid(child, None).expect("wait");
                assert_eq!(
                    st,
                    nix::sys::wait::WaitStatus::Exited(child, 1),
                    "in the cgroup /dev/null opens (bit 0) and a mknod'd fuse does not (bit 1); 4: could not join"
                );
            }
        }
        drop(cleanup);
        assert!(!dir.exists());
    }

    struct Rmdir<'a>(&'a Path);
    impl Drop for Rmdir<'_> {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(self.0);
        }
    }
    fn scopeguard(p: &Path) -> Rmdir<'_> {
        Rmdir(p)
    }
}
