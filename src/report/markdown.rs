//! The Markdown exporter: `report.md`, one section per results file, tables
//! as GitHub-flavoured pipe tables and charts as image links to the SVG
//! files written beside it ([`chart_file_name`]).

use std::fmt::Write;

use super::blocks::{Block, Table};
use super::document::{chart_file_name, ReportDocument};

/// A table cell: pipes escaped, line breaks flattened.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn table(out: &mut String, t: &Table) {
    let _ = writeln!(out, "### {}\n", t.title);
    if !t.rows.is_empty() {
        let header: Vec<String> = t.columns.iter().map(|c| cell(c)).collect();
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(t.columns.len()));
        for row in &t.rows {
            let cells: Vec<String> = row.iter().map(|c| cell(c)).collect();
            let _ = writeln!(out, "| {} |", cells.join(" | "));
        }
        out.push('\n');
    }
    for note in &t.notes {
        let _ = writeln!(out, "{note}\n");
    }
}

/// Renders the whole report as Markdown.
pub fn render_markdown(doc: &ReportDocument) -> String {
    let mut out = String::from("# infab report\n\n");
    let _ = writeln!(
        out,
        "Rendered by {} from {} results file(s).\n",
        doc.generator,
        doc.files.len()
    );
    for file in &doc.files {
        let _ = writeln!(
            out,
            "- [{} (`{}`)](#{}): {}",
            file.heading,
            file.source.display(),
            file.id,
            file.index_note
        );
    }
    out.push('\n');
    for file in &doc.files {
        let _ = writeln!(
            out,
            "<a id=\"{}\"></a>\n\n## {} (`{}`)\n",
            file.id,
            file.heading,
            file.source.display()
        );
        for block in &file.blocks {
            md_block(&mut out, &file.id, block);
        }
    }
    out
}

/// One block; `Details` as a `###` heading over its blocks (they come
/// last in a file's section).
fn md_block(out: &mut String, file_id: &str, block: &Block) {
    match block {
        Block::Table(t) => table(out, t),
        Block::Note(text) => {
            let _ = writeln!(out, "{text}\n");
        }
        Block::Chart(chart) => {
            let _ = writeln!(
                out,
                "### {}\n\n![{}]({})\n\n*{}*\n",
                chart.title,
                chart.title,
                chart_file_name(file_id, chart),
                chart.caption
            );
        }
        Block::Details { title, blocks } => {
            let _ = writeln!(out, "### {title}\n");
            for inner in blocks {
                md_block(out, file_id, inner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::blocks::Chart;
    use crate::report::document::FileSection;

    #[test]
    fn tables_escape_pipes_and_charts_link_their_files() {
        let doc = ReportDocument {
            generator: "infab test".into(),
            files: vec![FileSection {
                source: "r/a.json".into(),
                id: "a".into(),
                heading: "Test 5.1: x".into(),
                index_note: "complete".into(),
                blocks: vec![
                    Block::Table(Table {
                        title: "T".into(),
                        columns: vec!["k".into(), "v".into()],
                        rows: vec![vec!["a|b".into(), "c\nd".into()]],
                        notes: vec!["note".into()],
                    }),
                    Block::Chart(Chart {
                        slug: "throughput".into(),
                        title: "Chart".into(),
                        caption: "cap".into(),
                        svg: "<svg/>".into(),
                    }),
                ],
            }],
        };
        let md = render_markdown(&doc);
        assert!(md.contains("| a\\|b | c d |"), "{md}");
        assert!(md.contains("|---|---|"));
        assert!(md.contains("![Chart](a-throughput.svg)"));
        assert!(md.contains("- [Test 5.1: x (`r/a.json`)](#a)"));
        assert!(!md.contains("<svg"), "charts are files, not inline");
    }
}
