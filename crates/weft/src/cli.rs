//! The command line, as DESIGN.md lists it.

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "weft",
    version,
    about = "Containers on a Calico-style network, with a packet tracer"
)]
pub struct Cli {
    /// Lab (cluster) to act on.
    #[arg(long, global = true, env = "WEFT_LAB", default_value = "default")]
    pub lab: String,
    /// Act as on this node of the lab.
    #[arg(long, global = true, env = "WEFT_NODE")]
    pub node: Option<String>,
    /// Output format.
    #[arg(short = 'o', long = "output", global = true, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// For people (`-o text` is the same).
    #[value(alias = "text")]
    Table,
    Json,
    Yaml,
    /// `weft trace`: the flow diagram as SVG (other commands print their table).
    Svg,
    /// `weft trace --verify`: what was captured, as pcapng on stdout.
    Pcap,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build, list, enter and remove labs (clusters of network namespaces on this machine).
    #[command(subcommand)]
    Lab(LabCmd),
    /// Manage networks.
    #[command(subcommand)]
    Network(NetworkCmd),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCmd),
    /// Run a container.
    Run(Box<RunArgs>),
    /// Run a command in a running container.
    Exec(ExecArgs),
    /// List containers.
    Ps {
        /// Show stopped containers too.
        #[arg(short, long)]
        all: bool,
    },
    /// Show a container's output.
    Logs {
        #[arg(short, long)]
        follow: bool,
        name: String,
    },
    /// Show containers in detail: Docker's shape (a JSON array, like `docker inspect`);
    /// with `-o json|yaml`, weft's own object (name, node, network, ip, state, pid, ...).
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
        /// Print this Go-style template per container: `{{.State.Pid}}`-like paths and
        /// `{{json .Config}}`, on Docker's shape.
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Resource usage of running containers (like `docker stats --no-stream`).
    Stats { names: Vec<String> },
    /// Stop containers (SIGTERM, then SIGKILL).
    Stop {
        /// Seconds to wait before SIGKILL.
        #[arg(short, long, default_value_t = 10)]
        time: u64,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Send a signal to containers.
    Kill {
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove containers.
    Rm {
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// IP address management.
    #[command(subcommand)]
    Ipam(IpamCmd),
    /// Show resources of the cluster (node, network, workload, ippool, policy, globalpolicy).
    Get { kind: String, name: Option<String> },
    /// Create or update resources from a YAML or JSON file (`-` reads standard input).
    Apply {
        #[arg(short = 'f', long = "filename", required = true)]
        file: String,
    },
    /// Delete resources by kind and name, or those of a file.
    Delete {
        #[arg(short = 'f', long = "filename", conflicts_with_all = ["kind", "name"])]
        file: Option<String>,
        #[arg(required_unless_present = "file")]
        kind: Option<String>,
        #[arg(required_unless_present = "file")]
        name: Option<String>,
    },
    /// Predict the path of a packet hop by hop from the live state (--verify: probe and compare).
    Trace(TraceArgs),
    /// Check every node for the faults that break paths, each with its fix.
    Doctor,
    /// Make `weft-runc` (weft as a runc-compatible OCI runtime) a link to this binary.
    Install {
        /// Directory for the link (default: the directory of this binary).
        #[arg(long)]
        dir: Option<String>,
    },
    /// The node daemon (a lab starts one per node).
    Agent {
        /// Seconds between full resyncs [default: 60, or `resync` of the configuration file].
        #[arg(long)]
        resync: Option<u64>,
        /// The store: `etcd://HOST:PORT[,HOST:PORT]` or `sqlite:///path` [default: the
        /// configuration file's `store`, else the lab's own].
        #[arg(long, env = "WEFT_STORE")]
        store: Option<String>,
        /// Configuration file (YAML: store, cluster, node, resync) [default: /etc/weft/agent.yaml
        /// when it exists]. Flags and environment variables win over it.
        #[arg(long, env = "WEFT_CONFIG")]
        config: Option<std::path::PathBuf>,
        /// Run the agent in this process, without the supervisor that restarts it when it
        /// dies (for service managers that restart it themselves, e.g. systemd).
        #[arg(long)]
        no_supervise: bool,
    },
    /// The seeds' experiments, end to end, in a lab of their own.
    Demo {
        /// Keep the lab up afterwards (remove it with `weft lab down --lab demo`).
        #[arg(long)]
        keep: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum LabCmd {
    /// Build a lab: a switch, nodes with agents, a gateway and an outside client.
    Up(LabUpArgs),
    /// Remove the lab and everything in it.
    Down,
    /// List labs.
    Ls,
    /// Add or remove a node of a running lab.
    #[command(subcommand)]
    Node(LabNodeCmd),
    /// Stop or start the lab's etcd (`lab up --store etcd`), keeping its data: for fault
    /// experiments.
    Etcd {
        #[arg(value_parser = ["start", "stop"])]
        action: String,
    },
    /// Run a command inside a lab member (a node, gw, ext or fabric).
    Exec {
        member: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum LabNodeCmd {
    /// A new node joins: its namespace on the switch, its record in the store, its agent.
    Add {
        name: String,
        /// Put the node on this underlay subnet (e.g. 198.51.101.0/24) instead of the primary
        /// 198.51.100.0/24: a segment of its own (made on first use) that the lab's gateway
        /// routes to, its gateway the subnet's first address. See `lab up --subnet`.
        #[arg(long, value_name = "CIDR")]
        subnet: Option<String>,
    },
    /// A node leaves: its agent, containers and namespace go, and the cluster forgets it
    /// (its blocks are released and every other node drops its routes).
    Rm {
        name: String,
        /// Remove the node's containers with it.
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Args, Debug)]
pub struct LabUpArgs {
    /// Node names (comma-separated), or a count.
    #[arg(long, default_value = "master,slave1,slave2")]
    pub nodes: String,
    /// Default way between nodes for every pool without its own vxlanMode: none (plain routes
    /// via the node's address), vxlan (Calico's VXLAN mode, always), crosssubnet (VXLAN
    /// only to nodes on another subnet, see --subnet), ipip (Calico's IPIP mode: tunl0, always)
    /// or ipip-crosssubnet. IPIP needs the kernel's ipip module: lab up checks first and
    /// refuses, making nothing, when the kernel lacks it.
    #[arg(long, default_value = "none")]
    pub encap: String,
    /// Put nodes on another underlay subnet: NODE[,NODE...]=CIDR, repeatable (e.g.
    /// --subnet b1,b2=198.51.101.0/24). Each subnet is a segment of its own; the gateway
    /// (the subnet's first address) routes between it and the primary 198.51.100.0/24, so
    /// plain routes to nodes on another subnet do not work (use --encap crosssubnet).
    #[arg(long, value_name = "NODE=CIDR")]
    pub subnet: Vec<String>,
    #[arg(long, default_value = "10.244.0.0/16")]
    pub pool: String,
    #[arg(long, default_value_t = 26)]
    pub block_size: u8,
    #[arg(long, default_value = "10.96.0.0/12")]
    pub service_cidr: String,
    /// Where the cluster's state lives: sqlite (one file) or etcd (an etcd-server of the
    /// lab's own on its underlay, reached by the agents over the network).
    #[arg(long, default_value = "sqlite")]
    pub store: String,
    /// What denied traffic meets: drop (the sender times out) or reject (ICMP at once).
    #[arg(long, default_value = "drop")]
    pub deny_action: String,
}

#[derive(Subcommand, Debug)]
pub enum NetworkCmd {
    /// Create a network.
    Create {
        name: String,
        #[arg(long, default_value = "routed")]
        driver: String,
        #[arg(long)]
        subnet: Option<String>,
        #[arg(long, default_value = "network")]
        isolation: String,
        /// Do not masquerade traffic leaving the cluster (Calico's natOutgoing: false).
        #[arg(long)]
        no_nat_outgoing: bool,
        /// Bridge driver: keep all traffic inside the network (no masquerade, no published ports).
        #[arg(long)]
        internal: bool,
        /// Bridge driver: name of the bridge on each node (default wbr- and a hash).
        #[arg(long)]
        bridge: Option<String>,
        /// What isolation does to traffic from other networks: drop or reject (default: the lab's).
        #[arg(long)]
        deny_action: Option<String>,
        /// VXLAN mode of the network's own pool (needs --subnet): Never, Always or CrossSubnet
        /// (Calico's IPPool vxlanMode; default: the lab's --encap).
        #[arg(long, value_name = "MODE")]
        vxlan_mode: Option<String>,
    },
    /// List networks.
    Ls,
    /// Show a network.
    Inspect { name: String },
    /// Remove a network.
    Rm { name: String },
}

#[derive(Subcommand, Debug)]
pub enum ImageCmd {
    /// List images.
    Ls,
    /// Import an image tarball (OCI layout or docker save).
    Import {
        file: String,
        #[arg(long)]
        name: Option<String>,
    },
    /// Build an image from host binaries and the libraries they need.
    Build {
        name: String,
        #[arg(long = "from-host", required = true, num_args = 1..)]
        from_host: Vec<String>,
    },
    /// Remove an image.
    Rm { name: String },
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run in the background and print the container id.
    #[arg(short, long)]
    pub detach: bool,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    #[arg(long)]
    pub name: Option<String>,
    /// Network, or container:NAME to share another container's network.
    #[arg(long)]
    pub net: Option<String>,
    #[arg(long = "label", short = 'l')]
    pub labels: Vec<String>,
    #[arg(long)]
    pub ip: Option<String>,
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    #[arg(long)]
    pub hostname: Option<String>,
    #[arg(short = 'i', long)]
    pub interactive: bool,
    #[arg(short = 't', long)]
    pub tty: bool,
    /// Memory limit, like 64m or 1g (bytes without a suffix).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// CPUs the container may use, like 0.5.
    #[arg(long)]
    pub cpus: Option<f64>,
    #[arg(long)]
    pub pids_limit: Option<i64>,
    /// no, on-failure[:N], always.
    #[arg(long, default_value = "no")]
    pub restart: String,
    /// uid[:gid] or a user name of the image.
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    #[arg(long)]
    pub read_only: bool,
    #[arg(long = "cap-add")]
    pub cap_add: Vec<String>,
    #[arg(long = "cap-drop")]
    pub cap_drop: Vec<String>,
    #[arg(long)]
    pub privileged: bool,
    /// Run in a user namespace (`host` to keep the host's).
    #[arg(long)]
    pub userns: Option<String>,
    /// Publish a port on the node's addresses: HOSTPORT:PORT[/tcp|udp] (bridge networks).
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    pub image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    #[arg(short = 'i', long)]
    pub interactive: bool,
    #[arg(short = 't', long)]
    pub tty: bool,
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    pub name: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
    pub command: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum IpamCmd {
    /// Show pool usage.
    Show {
        #[arg(long)]
        show_blocks: bool,
    },
    /// Check IPAM consistency.
    Check,
    /// Release addresses whose workload is gone, once seen leaked for the grace period.
    Gc {
        /// How long an address must have been seen leaked before it is released, e.g. 15m,
        /// 1h30m, 90s; 0s releases now. Addresses of workloads being created are never released.
        #[arg(long, default_value = "15m")]
        grace: String,
        /// Only report what would be released; record and release nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Set IPAM options (like calicoctl ipam configure) and a pool's VXLAN mode.
    #[command(group(clap::ArgGroup::new("setting").required(true).multiple(true)
        .args(["strict_affinity", "vxlan_mode"])))]
    Configure {
        /// Never borrow addresses from blocks affine to other nodes (true|false).
        #[arg(long, action = clap::ArgAction::Set, value_name = "true|false")]
        strict_affinity: Option<bool>,
        /// The pool's VXLAN mode (Calico's IPPool vxlanMode): Never, Always, CrossSubnet, or
        /// default (follow the lab's --encap). Needs --pool.
        #[arg(long, value_name = "MODE", requires = "pool")]
        vxlan_mode: Option<String>,
        /// Set it for this IP pool only (default: cluster-wide).
        #[arg(long)]
        pool: Option<String>,
    },
}

/// `weft trace FROM TO`.
#[derive(Args, Debug)]
pub struct TraceArgs {
    /// Where the packet starts: a container, node:NAME, ext, gw, or an IP.
    pub from: String,
    /// Where it goes: a container, node:NAME, ext, gw, or an IP.
    pub to: String,
    /// icmp, tcp or udp.
    #[arg(long, default_value = "icmp")]
    pub proto: String,
    /// Destination port (tcp, udp).
    #[arg(long)]
    pub port: Option<u16>,
    /// IP size of the probe in bytes (icmp, udp; default 84 like ping).
    #[arg(long)]
    pub size: Option<u16>,
    /// Send a real probe, capture on every interface of the path and compare; exits 1 when
    /// observation differs from prediction.
    #[arg(long)]
    pub verify: bool,
}

pub fn parse() -> Cli {
    Cli::parse()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn run_takes_command_after_image() {
        let c = Cli::try_parse_from([
            "weft", "--node", "slave1", "run", "-d", "--name", "web1", "--net", "net1", "--label",
            "app=web", "toolbox", "sleep", "-x", "100",
        ])
        .unwrap();
        assert_eq!(c.node.as_deref(), Some("slave1"));
        let Command::Run(r) = c.command else { panic!() };
        assert!(r.detach);
        assert_eq!(r.image, "toolbox");
        assert_eq!(r.command, ["sleep", "-x", "100"]);
        assert_eq!(r.labels, ["app=web"]);
    }

    #[test]
    fn publish_and_bridge_flags() {
        let c = Cli::try_parse_from([
            "weft",
            "run",
            "-d",
            "-p",
            "8080:80",
            "-p",
            "53:53/udp",
            "toolbox",
            "httpd",
        ])
        .unwrap();
        let Command::Run(r) = c.command else { panic!() };
        assert_eq!(r.publish, ["8080:80", "53:53/udp"]);
        let c = Cli::try_parse_from([
            "weft",
            "network",
            "create",
            "b",
            "--driver",
            "bridge",
            "--subnet",
            "10.10.0.0/16",
            "--internal",
            "--bridge",
            "mydocker",
            "--deny-action",
            "reject",
        ])
        .unwrap();
        let Command::Network(NetworkCmd::Create {
            internal,
            bridge,
            deny_action,
            ..
        }) = c.command
        else {
            panic!()
        };
        assert!(internal);
        assert_eq!(bridge.as_deref(), Some("mydocker"));
        assert_eq!(deny_action.as_deref(), Some("reject"));
    }

    #[test]
    fn lab_exec_takes_everything_after_dashes() {
        let c =
            Cli::try_parse_from(["weft", "lab", "exec", "master", "--", "ip", "-o", "r"]).unwrap();
        let Command::Lab(LabCmd::Exec { member, cmd }) = c.command else {
            panic!()
        };
        assert_eq!(member, "master");
        assert_eq!(cmd, ["ip", "-o", "r"]);
    }
}
