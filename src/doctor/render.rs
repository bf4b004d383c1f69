//! Printing a [`Report`]: a table for people, JSON for scripts.

use std::io::{self, Write};

use super::Report;

/// Widest a FINDING or FIX cell gets before it wraps onto continuation lines.
const TEXT_WIDTH: usize = 72;

/// Writes the findings as a table: SEVERITY, OBJECT, RULE, FINDING, FIX; long texts wrap
/// within their column. Ends with a one-line summary.
pub fn render_table(report: &Report, out: &mut impl Write) -> io::Result<()> {
    let header = ["SEVERITY", "OBJECT", "RULE", "FINDING", "FIX"];
    let rows: Vec<[String; 5]> = report
        .findings
        .iter()
        .map(|f| {
            [
                f.severity.as_str().to_uppercase(),
                f.object.clone(),
                f.rule.as_str().to_owned(),
                f.finding.clone(),
                f.fix.clone(),
            ]
        })
        .collect();
    if !rows.is_empty() {
        let mut widths = header.map(str::len);
        for row in &rows {
            for (i, cell) in row.iter().enumerate().take(3) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        widths[3] = TEXT_WIDTH;
        write_line(out, &widths, &header.map(|h| vec![h.to_owned()]))?;
        for row in &rows {
            let cells = [
                vec![row[0].clone()],
                vec![row[1].clone()],
                vec![row[2].clone()],
                wrap(&row[3], TEXT_WIDTH),
                wrap(&row[4], TEXT_WIDTH),
            ];
            write_line(out, &widths, &cells)?;
        }
        writeln!(out)?;
    }
    let s = &report.summary;
    writeln!(
        out,
        "{} error(s), {} warning(s), {} info across {} managed Service(s) and {} workload(s)",
        s.errors, s.warnings, s.infos, s.services, s.workloads
    )
}

/// One logical row, possibly several physical lines when cells wrap.
fn write_line(
    out: &mut impl Write,
    widths: &[usize; 5],
    cells: &[Vec<String>; 5],
) -> io::Result<()> {
    let height = cells.iter().map(Vec::len).max().unwrap_or(1);
    for line in 0..height {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            let part = cell.get(line).map(String::as_str).unwrap_or("");
            if i == cells.len() - 1 {
                text.push_str(part);
            } else {
                text.push_str(part);
                let pad = widths[i].saturating_sub(part.chars().count()) + 2;
                text.extend(std::iter::repeat_n(' ', pad));
            }
        }
        writeln!(out, "{}", text.trim_end())?;
    }
    Ok(())
}

/// Greedy word wrap; a single word longer than `width` gets a line of its own.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() || lines.is_empty() {
        lines.push(line);
    }
    lines
}

/// Writes the report as pretty JSON: `{"findings": [...], "summary": {...}}`.
pub fn render_json(report: &Report, out: &mut impl Write) -> io::Result<()> {
    serde_json::to_writer_pretty(&mut *out, report)?;
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_keeps_words_and_width() {
        let lines = wrap("aaa bbb ccc dddddddddd e", 7);
        assert_eq!(lines, ["aaa bbb", "ccc", "dddddddddd", "e"]);
        assert_eq!(wrap("", 5), [""]);
    }
}
