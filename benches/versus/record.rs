//! The run's record: every printed row kept machine-readably, the verdicts summed up
//! at the end, and the before figures of another build shown beside each row.
//!
//! ## Rows file
//! `target/versus/rows.tsv` (or `$MULTIPROC_BENCH_OUT/rows.tsv`), rewritten as each
//! section starts and at the end, so a run that dies half-way leaves the rows it
//! measured. One header line `# multiproc versus rows v1`, one line of column names,
//! then one line per printed row, tab-separated:
//!
//! | column | meaning |
//! |---|---|
//! | `section` | the section's key: its title up to the first `:` (`queue`, `physical floor`) |
//! | `kind` | `value` (a measurement) or `ratio` (ours / theirs) |
//! | `label` | the label as printed, leading spaces (the grouping) kept |
//! | `display` | the label with its subject, for the summary and the chart |
//! | `value` | the number the text starts with, in base units (seconds, msgs/s, B/s; a ratio as is) |
//! | `unit` | `s` for times, the printed unit for rates, `x` for ratios |
//! | `better` | `higher`, `lower` or empty (unknown): which way a ratio improves |
//! | `goal` | `<=0.8`, `>=100` or empty |
//! | `verdict` | `met`, `MISSED` or empty |
//! | `text` | the printed text after the label |
//! | `before_value`, `before_text` | the same row of the before build, when one was given |
//!
//! ## Before figures
//! `MULTIPROC_BENCH_BEFORE=FILE` names another build's rows: either its rows file or
//! its captured stdout (an old build that cannot write the file; the row format
//! `  {label:<58} {text}` has been stable). Each row of this run is printed with the
//! same row of that build beside it, matched by section, label and occurrence.
//! `benches/before-after.sh REV [SECTION...]` builds REV and runs both back to back.

use crate::common::Goal;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

/// One printed row.
#[derive(Clone, Debug, Default)]
pub struct Row {
    pub section: String,
    /// `value` or `ratio`.
    pub kind: String,
    pub label: String,
    pub display: String,
    pub value: Option<f64>,
    pub unit: String,
    /// `higher`, `lower` or empty.
    pub better: String,
    /// `<=0.8`, `>=100` or empty.
    pub goal: String,
    /// `met`, `MISSED` or empty.
    pub verdict: String,
    pub text: String,
    pub before_value: Option<f64>,
    pub before_text: Option<String>,
}

impl Row {
    /// The goal's bound, if any.
    pub fn goal_bound(&self) -> Option<f64> {
        self.goal
            .strip_prefix("<=")
            .or_else(|| self.goal.strip_prefix(">="))?
            .parse()
            .ok()
    }
}

/// Rows of the before build.
enum Before {
    /// Its rows file.
    Rows(Vec<Row>),
    /// Its stdout: (section key, line without its two leading spaces).
    Stdout(Vec<(String, String)>),
}

struct Record {
    rows: Vec<Row>,
    /// (section key, full title, start).
    sections: Vec<(String, String, Instant)>,
    before: Option<(String, Before)>,
}

static RECORD: Mutex<Record> = Mutex::new(Record {
    rows: Vec::new(),
    sections: Vec::new(),
    before: None,
});

fn record() -> std::sync::MutexGuard<'static, Record> {
    // A panic while holding the lock only ever happens between two pushes: the
    // rows are still whole.
    RECORD.lock().unwrap_or_else(|e| e.into_inner())
}

/// The section key of a title: up to the first `:` or ` (`.
pub fn section_key(title: &str) -> String {
    let end = [title.find(':'), title.find(" (")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(title.len());
    title[..end].trim().to_owned()
}

/// Where the rows file and the chart go: `$MULTIPROC_BENCH_OUT`, else
/// `$CARGO_TARGET_DIR/versus`, else `target/versus` in the package.
pub fn out_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MULTIPROC_BENCH_OUT") {
        return d.into();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(t) => root.join(t).join("versus"),
        None => root.join("target/versus"),
    }
}

/// Loads `MULTIPROC_BENCH_BEFORE`, if set; says what it found.
pub fn load_before() {
    let Some(path) = std::env::var_os("MULTIPROC_BENCH_BEFORE") else {
        return;
    };
    let path = PathBuf::from(path);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            println!(
                "  (MULTIPROC_BENCH_BEFORE={}: cannot read it: {e}; no before figures)",
                path.display()
            );
            return;
        }
    };
    let name =
        std::env::var("MULTIPROC_BENCH_BEFORE_NAME").unwrap_or_else(|_| path.display().to_string());
    let before = match parse_rows(&text) {
        Some((rows, _)) => Before::Rows(rows),
        None => Before::Stdout(parse_stdout(&text)),
    };
    let n = match &before {
        Before::Rows(r) => r.len(),
        Before::Stdout(l) => l.len(),
    };
    println!("  before figures: {name} ({n} lines), shown as '| before: ...'");
    record().before = Some((name, before));
}

/// Starts a section (saving the rows so far).
pub fn begin_section(title: &str) {
    let mut r = record();
    r.sections
        .push((section_key(title), title.to_owned(), Instant::now()));
    let before = r.before.as_ref().map(|(n, _)| n.as_str());
    let _ = save_rows(&r.rows, before);
}

/// Records a measurement; returns the text to print after it (the before figure).
pub fn value(label: &str, text: &str) -> String {
    let (value, unit) = parse_quantity(text);
    push(Row {
        kind: "value".into(),
        label: label.into(),
        value,
        unit,
        text: text.trim().into(),
        ..Row::default()
    })
}

/// Records a ratio; returns the text to print after it (the before figure).
pub fn ratio(label: &str, r: f64, goal: Goal, text: &str) -> String {
    let (goal, verdict, better) = match goal {
        Goal::AtMost(g) => (format!("<={g}"), r <= g, "lower"),
        Goal::AtLeast(g) => (format!(">={g}"), r >= g, "higher"),
        Goal::None => (String::new(), false, ""),
    };
    let verdict = match (goal.is_empty(), verdict) {
        (true, _) => "",
        (false, true) => "met",
        (false, false) => "MISSED",
    };
    push(Row {
        kind: "ratio".into(),
        label: label.into(),
        value: Some(r),
        unit: "x".into(),
        better: better.into(),
        goal,
        verdict: verdict.into(),
        text: text.trim().into(),
        ..Row::default()
    })
}

fn push(mut row: Row) -> String {
    let mut r = record();
    row.section = r.sections.last().map(|s| s.0.clone()).unwrap_or_default();
    let same_section: Vec<&Row> = r.rows.iter().filter(|x| x.section == row.section).collect();
    row.display = display_label(&same_section, &row.label);
    if row.kind == "ratio" && row.better.is_empty() {
        row.better = direction_without_goal(&same_section, &row.label).into();
    }
    let occurrence = same_section.iter().filter(|x| x.label == row.label).count();
    let suffix = match &r.before {
        None => String::new(),
        Some((_, before)) => match find_before(before, &row.section, &row.label, occurrence) {
            Some(text) => {
                let (v, _) = parse_quantity(&text);
                row.before_value = if row.kind == "ratio" {
                    leading_number(&text)
                } else {
                    v
                };
                let s = format!("   | before: {text}");
                row.before_text = Some(text);
                s
            }
            None => "   | before: (no such row)".into(),
        },
    };
    r.rows.push(row);
    suffix
}

/// Words a label starts with when it measures a peer or the floor, not multiproc:
/// such a row is never the subject of the indented rows after it.
const PEER_WORDS: &[&str] = &[
    "python",
    "iceoryx2",
    "pipe(2)",
    "pthread",
    "socketpair",
    "crossbeam",
    "lmdb",
    "same,",
    "floor",
    "bare syscalls",
    "memcpy",
    "glibc",
    "futex-only",
];

fn is_peer_label(label: &str) -> bool {
    let l = label.trim_start().to_lowercase();
    PEER_WORDS.iter().any(|w| l.starts_with(w)) || l.contains("(python)")
}

/// An indented label gets the last unindented multiproc row of its section as its
/// subject, unless it names it already: `Pipe 8 B round trip, spinning recv · vs
/// pipe(2)`, but `Dict<u64, u64> get / LMDB get` as it is.
fn display_label(section: &[&Row], label: &str) -> String {
    let trimmed = label.trim_start();
    // A peer set against a peer (`bare syscalls / python's`) has no multiproc subject.
    if !label.starts_with(' ') || is_peer_label(trimmed) {
        return trimmed.to_owned();
    }
    let subject = section
        .iter()
        .rev()
        .find(|r| !r.label.starts_with(' ') && !is_peer_label(&r.label))
        .map(|r| r.label.as_str());
    match subject {
        Some(s) if !trimmed.starts_with(s.split(' ').next().unwrap_or(s)) => {
            format!("{s}{SUBJECT_SEP}{trimmed}")
        }
        _ => trimmed.to_owned(),
    }
}

/// Between a row's subject and its own label in [`Row::display`].
pub const SUBJECT_SEP: &str = " · ";

/// `display` cut to `n` characters, cutting the subject before the label itself.
pub fn short_display(display: &str, n: usize) -> String {
    match display.rsplit_once(SUBJECT_SEP) {
        Some((subject, own)) if display.chars().count() > n => {
            let room = n.saturating_sub(own.chars().count() + SUBJECT_SEP.chars().count());
            if room >= 12 {
                format!("{}{SUBJECT_SEP}{own}", truncate(subject, room))
            } else {
                truncate(own, n)
            }
        }
        _ => truncate(display, n),
    }
}

/// Which way a ratio without a goal improves: its label says so (`time`, `latency`,
/// `round trip`: lower; `/s`, `rate`, `bandwidth`: higher), else the last
/// measurement before it (a time: lower; a rate: higher).
fn direction_without_goal(section: &[&Row], label: &str) -> &'static str {
    let l = label.to_lowercase();
    if ["time", "latency", "round trip"]
        .iter()
        .any(|w| l.contains(w))
    {
        return "lower";
    }
    if ["/s", " rate", "bandwidth", "memcpy"]
        .iter()
        .any(|w| l.contains(w))
    {
        return "higher";
    }
    match section
        .iter()
        .rev()
        .find(|r| r.kind == "value" && r.value.is_some())
    {
        Some(r) if r.unit == "s" => "lower",
        Some(_) => "higher",
        None => "",
    }
}

fn find_before(before: &Before, section: &str, label: &str, occurrence: usize) -> Option<String> {
    match before {
        Before::Rows(rows) => rows
            .iter()
            .filter(|r| r.section == section && r.label == label)
            .nth(occurrence)
            .map(|r| r.text.clone()),
        Before::Stdout(lines) => lines
            .iter()
            .filter(|(s, _)| s == section)
            .filter_map(|(_, line)| {
                let rest = line.strip_prefix(label)?;
                // Labels are padded to 58 columns and followed by a space: a shorter
                // label is followed by at least two, so `X` never matches `X foo`.
                // The floor's lines put a colon after the label.
                if rest.starts_with(':')
                    || rest.starts_with("  ")
                    || (label.len() >= 58 && rest.starts_with(' '))
                {
                    Some(rest.trim_start_matches(':').trim().to_owned())
                } else {
                    None
                }
            })
            .nth(occurrence),
    }
}

/// The number a printed text starts with.
fn leading_number(text: &str) -> Option<f64> {
    let t = text.trim_start();
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(t.len());
    t[..end].parse().ok()
}

/// `13.0 ns` -> (1.3e-8, "s"); `14.20 M msgs/s` -> (1.42e7, "msgs/s");
/// `20.69 GB/s` -> (2.069e10, "B/s"); `1.2ms` (Debug of a Duration) -> (1.2e-3, "s").
pub fn parse_quantity(text: &str) -> (Option<f64>, String) {
    let t = text.trim_start();
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let Ok(n) = t[..end].parse::<f64>() else {
        return (None, String::new());
    };
    let mut words = t[end..].split_whitespace();
    let first = words.next().unwrap_or("");
    let time = |w: &str| match w.trim_end_matches([',', ';']) {
        "ns" => Some(1e-9),
        "us" | "µs" => Some(1e-6),
        "ms" => Some(1e-3),
        "s" => Some(1.0),
        _ => None,
    };
    if let Some(scale) = time(first) {
        return (Some(n * scale), "s".into());
    }
    let prefix = |c: Option<char>| match c {
        Some('k') => Some(1e3),
        Some('M') => Some(1e6),
        Some('G') => Some(1e9),
        _ => None,
    };
    let mut chars = first.chars();
    match prefix(chars.next()) {
        // `14.20 M msgs/s`
        Some(scale) if first.len() == 1 => (Some(n * scale), words.next().unwrap_or("").to_owned()),
        // `20.69 GB/s`, `58.74 Mops/s`
        Some(scale) if first.contains('/') => (Some(n * scale), chars.as_str().to_owned()),
        _ => (Some(n), first.to_owned()),
    }
}

const HEADER: &str = "# multiproc versus rows v1";
const COLUMNS: &str =
    "section\tkind\tlabel\tdisplay\tvalue\tunit\tbetter\tgoal\tverdict\ttext\tbefore_value\tbefore_text";

fn clean(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

fn num(v: Option<f64>) -> String {
    v.map(|v| format!("{v}")).unwrap_or_default()
}

/// The rows as the rows file's text.
pub fn rows_tsv(rows: &[Row], before: Option<&str>) -> String {
    let mut s = format!("{HEADER}\n");
    if let Some(name) = before {
        let _ = writeln!(s, "# before: {}", clean(name));
    }
    s.push_str(COLUMNS);
    s.push('\n');
    for r in rows {
        let _ = writeln!(
            s,
            "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
            clean(&r.section),
            r.kind,
            clean(&r.label),
            clean(&r.display),
            num(r.value),
            clean(&r.unit),
            r.better,
            r.goal,
            r.verdict,
            clean(&r.text),
            num(r.before_value),
            clean(r.before_text.as_deref().unwrap_or("")),
        );
    }
    s
}

/// Parses a rows file into its rows and the name of its before build; `None` if
/// `text` is not one.
pub fn parse_rows(text: &str) -> Option<(Vec<Row>, Option<String>)> {
    let mut lines = text.lines().peekable();
    if lines.next()? != HEADER {
        return None;
    }
    let mut before = None;
    while let Some(c) = lines.next_if(|l| l.starts_with('#')) {
        if let Some(name) = c.strip_prefix("# before: ") {
            before = Some(name.to_owned());
        }
    }
    let columns: Vec<&str> = lines.next()?.split('\t').collect();
    let col = |name: &str| columns.iter().position(|c| *c == name);
    let idx: Vec<Option<usize>> = COLUMNS.split('\t').map(col).collect();
    let rows = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            let get = |i: usize| -> String {
                idx[i]
                    .and_then(|j| f.get(j))
                    .copied()
                    .unwrap_or("")
                    .to_owned()
            };
            let opt = |i: usize| get(i).parse::<f64>().ok();
            Row {
                section: get(0),
                kind: get(1),
                label: get(2),
                display: get(3),
                value: opt(4),
                unit: get(5),
                better: get(6),
                goal: get(7),
                verdict: get(8),
                text: get(9),
                before_value: opt(10),
                before_text: Some(get(11)).filter(|s| !s.is_empty()),
            }
        })
        .collect();
    Some((rows, before))
}

/// A captured stdout as (section key, row line without its two leading spaces).
fn parse_stdout(text: &str) -> Vec<(String, String)> {
    let mut section = String::new();
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(title) = line.strip_prefix("== ") {
            section = section_key(title);
        } else if let Some(rest) = line.strip_prefix("  ") {
            out.push((section.clone(), rest.to_owned()));
        }
    }
    out
}

fn save_rows(rows: &[Row], before: Option<&str>) -> std::io::Result<PathBuf> {
    let dir = out_dir();
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("rows.tsv");
    std::fs::write(&path, rows_tsv(rows, before))?;
    Ok(path)
}

/// Ends the run: the goals' summary, the sections' times and the total, the rows file
/// and the chart.
pub fn finish(start: Instant) {
    let total = start.elapsed();
    let r = record();
    let rows = r.rows.clone();
    let before = r.before.as_ref().map(|(n, _)| n.clone());
    let mut times = Vec::new();
    // The first section (the floor) is measured before its heading is printed: its
    // time starts with the run.
    for (i, (key, _, begun)) in r.sections.iter().enumerate() {
        let begun = if i == 0 { start } else { *begun };
        let end = r
            .sections
            .get(i + 1)
            .map(|s| s.2)
            .unwrap_or_else(Instant::now);
        times.push((key.clone(), end.duration_since(begun)));
    }
    drop(r);

    println!();
    print!("{}", summary(&rows, before.as_deref()));
    println!();
    let parts: Vec<String> = times
        .iter()
        .map(|(k, d)| format!("{k} {:.0} s", d.as_secs_f64()))
        .collect();
    println!(
        "== time: {:.0} s in all ({})",
        total.as_secs_f64(),
        parts.join(", ")
    );
    match save_rows(&rows, before.as_deref()) {
        Ok(p) => println!("  rows:  {}", p.display()),
        Err(e) => println!("  rows:  not written ({e})"),
    }
    let svg = out_dir().join("versus.svg");
    match crate::chart::write_svg(&rows, &svg, before.as_deref()) {
        Ok(()) => println!("  chart: {}", svg.display()),
        Err(e) => println!("  chart: not written ({e})"),
    }
}

/// The goals block: every row with a goal, its verdict (and the before build's), counted.
pub fn summary(rows: &[Row], before: Option<&str>) -> String {
    let goals: Vec<&Row> = rows.iter().filter(|r| !r.goal.is_empty()).collect();
    let met = goals.iter().filter(|r| r.verdict == "met").count();
    let missed = goals.len() - met;
    // A row that could not be measured (a peer missing or timing out) may hide a goal.
    let skipped: Vec<&Row> = rows
        .iter()
        .filter(|r| r.kind == "value" && r.text.starts_with("skipped"))
        .collect();
    let count = match skipped.len() {
        0 => format!("== goals: {met} met, {missed} MISSED\n"),
        1 => format!("== goals: {met} met, {missed} MISSED (1 row skipped)\n"),
        n => format!("== goals: {met} met, {missed} MISSED ({n} rows skipped)\n"),
    };
    let mut s = count.clone();
    for r in &goals {
        let goal = r.goal.replace("<=", "<= ").replace(">=", ">= ");
        let ratio = r.value.map(crate::common::fmt_ratio).unwrap_or_default();
        let _ = write!(
            s,
            "  {:<6} {:<11} {:<76} {:>8}  (goal {goal}x)",
            r.verdict,
            r.section,
            short_display(&r.display, 76),
            ratio
        );
        if let (Some(b), Some(was)) = (r.before_value, before_met(r)) {
            let _ = write!(
                s,
                "  before: {} {}",
                crate::common::fmt_ratio(b),
                if was { "met" } else { "MISSED" }
            );
        }
        s.push('\n');
    }
    for r in &skipped {
        let _ = writeln!(
            s,
            "  {:<6} {:<11} {:<76} {}",
            "skip",
            r.section,
            short_display(&r.display, 76),
            r.text
        );
    }
    if let Some(name) = before {
        let newly = goals
            .iter()
            .filter(|r| r.verdict == "met" && before_met(r) == Some(false))
            .count();
        let lost = goals
            .iter()
            .filter(|r| r.verdict == "MISSED" && before_met(r) == Some(true))
            .count();
        let _ = writeln!(
            s,
            "  (before = {name}, judged by this run's goals: {newly} newly met, {lost} newly MISSED)"
        );
    }
    s.push_str(&count);
    s
}

/// Whether the before figure of a goal row meets this run's goal.
fn before_met(r: &Row) -> Option<bool> {
    let (b, g) = (r.before_value?, r.goal_bound()?);
    Some(if r.goal.starts_with("<=") {
        b <= g
    } else {
        b >= g
    })
}

/// `s` cut to `n` characters, with an ellipsis when cut.
pub fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_owned()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}
