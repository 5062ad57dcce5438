//! The HTML exporter: `report.html`, one self-contained page (inline CSS,
//! inline SVG charts, no scripts, no external URL) that opens the same from
//! a mail attachment as from a web server.

use std::fmt::Write;

use super::blocks::{Block, Table};
use super::document::ReportDocument;

/// The page style of every infab HTML page (report and compare).
pub(crate) const CSS: &str = "\
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
h1{border-bottom:2px solid #444}
h2{margin-top:2.5em;border-bottom:1px solid #aaa}
h3{margin-bottom:.4em}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em}
th,td{border:1px solid #bbb;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#eee}
tr:nth-child(even) td{background:#fafafa}
figure{margin:1em 0}
figcaption{font-size:.9em;color:#444;max-width:900px}
.note{color:#333}
.toc li{margin:.2em 0}
";

/// Escapes text for HTML element content and attribute values.
pub(crate) fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn table(out: &mut String, t: &Table) {
    let _ = writeln!(out, "<h3>{}</h3>", esc(&t.title));
    if !t.rows.is_empty() {
        out.push_str("<table>\n<thead><tr>");
        for c in &t.columns {
            let _ = write!(out, "<th>{}</th>", esc(c));
        }
        out.push_str("</tr></thead>\n<tbody>\n");
        for row in &t.rows {
            out.push_str("<tr>");
            for c in row {
                let _ = write!(out, "<td>{}</td>", esc(c));
            }
            out.push_str("</tr>\n");
        }
        out.push_str("</tbody>\n</table>\n");
    }
    for note in &t.notes {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(note));
    }
}

/// An SVG document made fit to inline: no XML prolog, and no namespace
/// attribute (HTML puts `<svg>` in the SVG namespace itself, and the page
/// then holds no URL at all).
pub(crate) fn inline_svg(svg: &str) -> String {
    let start = svg.find("<svg").unwrap_or(0);
    svg[start..].replacen(" xmlns=\"http://www.w3.org/2000/svg\"", "", 1)
}

/// Renders the whole report as one self-contained HTML page.
pub fn render_html(doc: &ReportDocument) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>infab report</title>\n<style>\n{CSS}</style>\n</head>\n<body>\n<h1>infab report</h1>\n<p>Rendered by {} from {} results file(s).</p>\n<ul class=\"toc\">\n",
        esc(&doc.generator),
        doc.files.len()
    );
    for file in &doc.files {
        let _ = writeln!(
            out,
            "<li><a href=\"#{}\">{}</a> (<code>{}</code>): {}</li>",
            esc(&file.id),
            esc(&file.heading),
            esc(&file.source.display().to_string()),
            esc(&file.index_note)
        );
    }
    out.push_str("</ul>\n");
    for file in &doc.files {
        let _ = writeln!(
            out,
            "<section id=\"{}\">\n<h2>{} (<code>{}</code>)</h2>",
            esc(&file.id),
            esc(&file.heading),
            esc(&file.source.display().to_string())
        );
        for block in &file.blocks {
            html_block(&mut out, &file.id, block);
        }
        out.push_str("</section>\n");
    }
    out.push_str("</body>\n</html>\n");
    out
}

/// One block; `Details` as a collapsed `<details>` around its blocks.
fn html_block(out: &mut String, file_id: &str, block: &Block) {
    match block {
        Block::Table(t) => table(out, t),
        Block::Note(text) => {
            let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(text));
        }
        Block::Chart(chart) => {
            let _ = writeln!(
                out,
                "<figure id=\"{}-{}\">\n<h3>{}</h3>\n{}\n<figcaption>{}</figcaption>\n</figure>",
                esc(file_id),
                esc(&chart.slug),
                esc(&chart.title),
                inline_svg(&chart.svg),
                esc(&chart.caption)
            );
        }
        Block::Details { title, blocks } => {
            let _ = writeln!(out, "<details>\n<summary>{}</summary>", esc(title));
            for inner in blocks {
                html_block(out, file_id, inner);
            }
            out.push_str("</details>\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_svg_inlined_without_urls() {
        assert_eq!(esc("<a & \"b\">"), "&lt;a &amp; &quot;b&quot;&gt;");
        let svg = "<?xml version=\"1.0\"?>\n<svg width=\"1\" xmlns=\"http://www.w3.org/2000/svg\"><text>x</text></svg>";
        assert_eq!(inline_svg(svg), "<svg width=\"1\"><text>x</text></svg>");
    }
}
