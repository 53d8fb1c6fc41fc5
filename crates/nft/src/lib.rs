//! weft-nft: weft's nftables table, as a typed model, and the backend that
//! replaces it in the kernel in one transaction by speaking nf_tables over
//! netlink itself (no `nft` program, no libnftnl).
//!
//! - [`Table`], [`Chain`], [`Set`], [`Map`], [`Rule`], [`Expr`]: the model. Each
//!   type prints (`Display`) the way `nft list` prints it.
//! - [`Backend`]: `apply` (replace a table whole), `update` (one transaction
//!   with only the differences from the table last applied), `delete`,
//!   `exists`, `read` (a [`Summary`] of what the kernel holds), `drift`.
//! - [`NetlinkBackend`]: the product's backend, one socket per network
//!   namespace ([`NetlinkBackend::in_netns`]).
//! - [`NftCli`]: a secondary backend running `nft -f -`, for reference and tests.
//!
//! ```
//! use weft_nft::*;
//! let mut t = Table::new("weft");
//! t.chains.push(Chain::base(
//!     "forward-in",
//!     BaseChain::filter(Hook::Forward, 0, Policy::Accept),
//!     vec![Rule::new(vec![Expr::ct_state(CtStates::ESTABLISHED | CtStates::RELATED), Expr::accept()])],
//! ));
//! assert_eq!(t.chains[0].rules[0].to_string(), "ct state established,related accept");
//! ```
//!
//! Only the named table is ever touched: applying `inet weft` leaves every
//! other table of the namespace alone.
//!
//! Cost: every rule or jump added in a transaction makes the kernel validate the
//! chains reachable from its base chains again, while elements of a named set or
//! map holding plain data do not. weft's service table therefore keeps a service's
//! endpoints as map elements (about 20 chains, 60 rules and 20,000 elements at
//! 10,000 services): a full apply at 10,000 services takes about 0.3 s in the
//! kernel, an update of one service well under 1 ms (bench/README.md,
//! "services"; the earlier shape of 3 chains per service took 0.8 s and 30-50 ms).
//! Anonymous sets (`{ ... }`, [`Expr::NumgenVmap`]) are costly in big
//! transactions: the kernel walks the whole transaction for each one it binds
//! (10,000 numgen maps in one apply: about a minute). Prefer named sets, or
//! [`Rule::numgen_cascade`] for load balancing, and updates over re-applies.

#![warn(missing_docs)]

mod cli;
mod compile;
pub mod conntrack;
mod display;
mod error;
mod fasthash;
mod model;
mod netlink;
mod summary;

#[cfg(test)]
mod tests;

pub use cli::NftCli;
pub use display::{priority_text, proto_name};
pub use error::{Error, Result};
pub use model::*;
pub use netlink::{ApplyStats, NetlinkBackend};
pub use summary::{drift, ChainSummary, RuleSummary, SetSummary, Summary};

/// A way to program and read nftables tables.
pub trait Backend {
    /// Replaces the table (`table.family`, `table.name`) whole, in one
    /// transaction: on error the previous table is left as it was.
    fn apply(&mut self, table: &Table) -> Result<()>;

    /// Turns the table the kernel holds, `old` (as last applied), into `new`,
    /// in one transaction. Backends that cannot do better replace it whole.
    fn update(&mut self, old: &Table, new: &Table) -> Result<()> {
        let _ = old;
        self.apply(new)
    }

    /// Deletes a table; `Ok` when it does not exist.
    fn delete(&mut self, family: Family, name: &str) -> Result<()>;

    /// Whether a table exists.
    fn exists(&mut self, family: Family, name: &str) -> Result<bool>;

    /// What the kernel holds in a table (an error for which
    /// [`Error::is_not_found`] holds when it does not exist).
    fn read(&mut self, family: Family, name: &str) -> Result<Summary>;

    /// The differences between `table` and what the kernel holds (empty: none);
    /// a missing table is one difference.
    fn drift(&mut self, table: &Table) -> Result<Vec<String>> {
        let model = Summary::of(table)?;
        match self.read(table.family, &table.name) {
            Ok(kernel) => Ok(drift(&model, &kernel)),
            Err(e) if e.is_not_found() => Ok(vec![format!(
                "table {} {} is missing from the kernel",
                table.family.nft_name(),
                table.name
            )]),
            Err(e) => Err(e),
        }
    }
}
