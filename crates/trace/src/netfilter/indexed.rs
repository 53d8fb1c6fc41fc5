//! A table with its chains, sets and maps found by name in constant time: the evaluation looks
//! one up at every jump and every set match, and a node's table holds thousands of each (a
//! chain and a set per policy), which `Table::chain`'s scan made quadratic.

use std::hash::{BuildHasher, RandomState};
use std::ops::Deref;

use weft_nft::{Chain, Map, Set, Table};

/// A [`Table`] and its index by name. Dereferences to the table; its own `chain`, `set` and
/// `map` take the place of the table's linear ones.
pub struct Indexed {
    table: Table,
    hasher: RandomState,
    chains: Names,
    sets: Names,
    maps: Names,
}

/// Names by hash: (hash of the name, position), sorted. One allocation and no copy of the
/// names, so that building and dropping it cost little beside the table itself.
struct Names(Vec<(u64, usize)>);

impl Names {
    fn new<'a>(hasher: &RandomState, names: impl Iterator<Item = &'a String>) -> Names {
        let mut v: Vec<(u64, usize)> = names
            .enumerate()
            .map(|(i, n)| (hasher.hash_one(n.as_str()), i))
            .collect();
        // By hash, then position: the first of equal names comes first, as in a scan.
        v.sort_unstable();
        Names(v)
    }

    /// The position of the first item named `name` among `items`.
    fn find<T>(
        &self,
        hasher: &RandomState,
        items: &[T],
        name: &str,
        name_of: impl Fn(&T) -> &str,
    ) -> Option<usize> {
        let h = hasher.hash_one(name);
        let start = self.0.partition_point(|(x, _)| *x < h);
        self.0[start..]
            .iter()
            .take_while(|(x, _)| *x == h)
            .map(|(_, i)| *i)
            .find(|&i| name_of(&items[i]) == name)
    }
}

impl Indexed {
    pub fn new(table: Table) -> Indexed {
        let hasher = RandomState::new();
        Indexed {
            chains: Names::new(&hasher, table.chains.iter().map(|c| &c.name)),
            sets: Names::new(&hasher, table.sets.iter().map(|s| &s.name)),
            maps: Names::new(&hasher, table.maps.iter().map(|m| &m.name)),
            hasher,
            table,
        }
    }

    /// The chain named `name`.
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        let items = &self.table.chains;
        let i = self.chains.find(&self.hasher, items, name, |c| &c.name)?;
        Some(&items[i])
    }

    /// The set named `name`.
    pub fn set(&self, name: &str) -> Option<&Set> {
        let items = &self.table.sets;
        let i = self.sets.find(&self.hasher, items, name, |s| &s.name)?;
        Some(&items[i])
    }

    /// The map named `name`.
    pub fn map(&self, name: &str) -> Option<&Map> {
        let items = &self.table.maps;
        let i = self.maps.find(&self.hasher, items, name, |m| &m.name)?;
        Some(&items[i])
    }
}

impl Deref for Indexed {
    type Target = Table;
    fn deref(&self) -> &Table {
        &self.table
    }
}

impl From<Table> for Indexed {
    fn from(table: Table) -> Indexed {
        Indexed::new(table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_the_tables_scan_finds() {
        let mut t = Table::new("weft");
        for n in ["a", "b", "c"] {
            t.chains.push(Chain::regular(n, vec![]));
        }
        t.chains
            .push(Chain::regular("b", vec![weft_nft::Rule::new(vec![])]));
        let i = Indexed::new(t.clone());
        for n in ["a", "b", "c", "missing"] {
            assert_eq!(i.chain(n), t.chain(n), "{n}");
        }
        assert!(std::ptr::eq(i.chain("b").unwrap(), &i.table.chains[1]));
        assert_eq!(i.set("s"), None);
        assert_eq!(i.map("m"), None);
    }
}
