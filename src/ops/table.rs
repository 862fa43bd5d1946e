//! Tables for people: every column as wide as its widest cell, two spaces
//! apart, so a column starts at the same offset in every row whatever its
//! cells hold; the last column (a reason, an error) runs free. Widths count
//! characters.

use std::fmt::Write;

/// Rows of cells under a header, written with an indent.
#[derive(Debug, Clone, Default)]
pub struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table whose first row is the header.
    pub fn new(header: &[&str]) -> Table {
        Table {
            rows: vec![header.iter().map(|h| h.to_string()).collect()],
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table, each line indented by two spaces, trailing spaces trimmed.
    pub fn render(&self, out: &mut String) {
        let widths = self.widths();
        for row in &self.rows {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(cell, width)| format!("{cell:<width$}"))
                .collect();
            let _ = writeln!(out, "  {}", cells.join("  ").trim_end());
        }
    }

    /// The widest cell of each column.
    fn widths(&self) -> Vec<usize> {
        let columns = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        (0..columns)
            .map(|i| {
                let cells = self.rows.iter().filter_map(|r| r.get(i));
                cells.map(|c| c.chars().count()).max().unwrap_or(0)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_column_starts_at_the_same_offset_in_every_row() {
        let mut t = Table::new(&["order", "amount", "why"]);
        t.row(vec!["A1".into(), "1200000".into(), "a reason".into()]);
        t.row(vec!["A_LONGER_ORDER".into(), "5".into(), String::new()]);
        let mut out = String::new();
        t.render(&mut out);
        assert_eq!(
            out,
            "  order           amount   why\n  A1              1200000  a reason\n  A_LONGER_ORDER  5\n"
        );
    }
}
