//! Printing results as a table (for people) or as JSON / YAML (for scripts).

use anyhow::Result;
use serde::Serialize;

use crate::cli::Format;

/// Prints `value` as JSON or YAML, or calls `table` for the table format.
pub fn emit<T: Serialize + ?Sized>(
    format: Format,
    value: &T,
    table: impl FnOnce() -> Table,
) -> Result<()> {
    match format {
        Format::Json => println!("{}", serde_json::to_string_pretty(value)?),
        Format::Yaml => print!("{}", serde_yaml_ng::to_string(value)?),
        Format::Table | Format::Svg | Format::Pcap => print!("{}", table().render()),
    }
    Ok(())
}

/// A plain text table with upper-case headers, columns padded like `docker ps`.
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: vec![],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.len()).collect();
        for r in &self.rows {
            for (i, c) in r.iter().enumerate() {
                if i < widths.len() {
                    widths[i] = widths[i].max(c.chars().count());
                }
            }
        }
        let mut out = String::new();
        for line in std::iter::once(&self.headers).chain(self.rows.iter()) {
            let cells: Vec<String> = line
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if i + 1 == line.len() {
                        c.clone()
                    } else {
                        format!("{c:<w$}", w = widths[i])
                    }
                })
                .collect();
            out.push_str(cells.join("   ").trim_end());
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_columns() {
        let mut t = Table::new(&["NAME", "IP"]);
        t.row(vec!["web1".into(), "10.244.0.1".into()]);
        t.row(vec!["b-web1000".into(), "-".into()]);
        assert_eq!(
            t.render(),
            "NAME        IP\nweb1        10.244.0.1\nb-web1000   -\n"
        );
    }
}
