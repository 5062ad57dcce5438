//! The pieces a report is made of: formatted tables, drawn charts, notes
//! and collapsible groups of them. A leaf: the test sections in plot/ and
//! the tables of overview.rs, kpi.rs, system_report.rs and workload.rs
//! build these, document.rs arranges them per results file, markdown.rs
//! and html.rs format them; nothing here imports any of those, so the
//! sections and the document that calls them no longer depend on each
//! other.

/// A table of already formatted cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Heading above the table.
    pub title: String,
    /// Column headers, units included (e.g. `P99 µs`).
    pub columns: Vec<String>,
    /// Rows, each as long as `columns`.
    pub rows: Vec<Vec<String>>,
    /// Footnotes shown under the table.
    pub notes: Vec<String>,
}

/// One chart, already drawn.
#[derive(Debug, Clone, PartialEq)]
pub struct Chart {
    /// Short name for its file, e.g. `throughput` (becomes `STEM-throughput.svg`).
    pub slug: String,
    /// Heading above the chart.
    pub title: String,
    /// What the chart shows and what it does not, under it.
    pub caption: String,
    /// The SVG document.
    pub svg: String,
}

/// One piece of a file's section.
#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    /// A table.
    Table(Table),
    /// A chart.
    Chart(Chart),
    /// A paragraph of text.
    Note(String),
    /// Blocks a reader opens when needed (run metadata, the §14 system
    /// report): collapsed in HTML, at the end of the file's section in
    /// Markdown. Holds tables and notes, never charts.
    Details {
        /// What it holds, shown when collapsed.
        title: String,
        /// Its content.
        blocks: Vec<Block>,
    },
}

/// The tables among `blocks`, in order (how tests look up a section's
/// content).
#[cfg(test)]
pub(crate) fn tables(blocks: &[Block]) -> Vec<&Table> {
    blocks
        .iter()
        .filter_map(|b| match b {
            Block::Table(t) => Some(t),
            _ => None,
        })
        .collect()
}

/// The charts among `blocks`, in order.
#[cfg(test)]
pub(crate) fn charts(blocks: &[Block]) -> Vec<&Chart> {
    blocks
        .iter()
        .filter_map(|b| match b {
            Block::Chart(c) => Some(c),
            _ => None,
        })
        .collect()
}
