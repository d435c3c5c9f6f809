//! The run as a picture: one horizontal bar per ratio row, grouped by section, on a
//! log axis where right is always better (a time ratio is drawn inverted, as a speed),
//! with the goal marked and the bar coloured by its verdict. Written with `plotters`'
//! SVG backend, which writes text as SVG `<text>` and so needs no font library.
use crate::record::{short_display, truncate, Row};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

const WIDTH: i32 = 1400;
const LABEL_W: i32 = 560;
const PLOT_X0: i32 = LABEL_W + 10;
const PLOT_X1: i32 = 1090;
const ROW_H: i32 = 18;
const SECTION_H: i32 = 26;
const TOP: i32 = 92;
const BOTTOM: i32 = 56;

const MET: RGBColor = RGBColor(46, 139, 87);
const MISSED: RGBColor = RGBColor(205, 45, 45);
const NO_GOAL: RGBColor = RGBColor(160, 160, 160);
const GRID: RGBColor = RGBColor(225, 225, 225);

/// One bar: `speed` is ours against theirs with right better (a ratio of times
/// inverted), likewise the goal and the before figure. A row that could not be
/// measured (`skipped: ...`) is drawn without a bar (`speed` is `None`).
struct Bar<'a> {
    row: &'a Row,
    speed: Option<f64>,
    goal: Option<f64>,
    before: Option<f64>,
}

fn as_speed(row: &Row, r: f64) -> f64 {
    if row.better == "lower" {
        1.0 / r
    } else {
        r
    }
}

/// Writes the chart of `rows` (their ratio rows) to `path`.
pub fn write_svg(rows: &[Row], path: &Path, before: Option<&str>) -> Result<(), String> {
    let bars: Vec<Bar> = rows
        .iter()
        .filter_map(|row| {
            if row.kind == "value" && row.text.starts_with("skipped") {
                return Some(Bar {
                    row,
                    speed: None,
                    goal: None,
                    before: None,
                });
            }
            if row.kind != "ratio" {
                return None;
            }
            let r = row.value.filter(|v| v.is_finite() && *v > 0.0)?;
            Some(Bar {
                row,
                speed: Some(as_speed(row, r)),
                goal: row
                    .goal_bound()
                    .filter(|g| *g > 0.0)
                    .map(|g| as_speed(row, g)),
                before: row
                    .before_value
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .map(|b| as_speed(row, b)),
            })
        })
        .collect();
    if bars.iter().all(|b| b.speed.is_none()) {
        return Err("no ratio rows in this run".into());
    }
    let mut sections: Vec<&str> = Vec::new();
    for b in &bars {
        if sections.last() != Some(&b.row.section.as_str()) {
            sections.push(&b.row.section);
        }
    }
    let height = TOP + BOTTOM + bars.len() as i32 * ROW_H + sections.len() as i32 * SECTION_H;

    // The axis spans whole decades around every value drawn.
    let all = bars
        .iter()
        .flat_map(|b| [b.speed, b.goal, b.before])
        .flatten()
        .chain([1.0]);
    let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let (lo, hi) = (
        lo.log10().floor() as i32,
        hi.log10().ceil().max(lo.log10().floor() + 1.0) as i32,
    );
    let x = |v: f64| -> i32 {
        let f = (v.log10() - lo as f64) / (hi - lo) as f64;
        PLOT_X0 + (f * (PLOT_X1 - PLOT_X0) as f64).round() as i32
    };

    let root = SVGBackend::new(path, (WIDTH as u32, height as u32)).into_drawing_area();
    let e = |e: DrawingAreaErrorKind<_>| e.to_string();
    root.fill(&WHITE).map_err(e)?;
    let font = |size: f64| ("sans-serif", size).into_font();
    let left = |size: f64| {
        font(size)
            .color(&BLACK)
            .pos(Pos::new(HPos::Left, VPos::Center))
    };
    let right = |size: f64| {
        font(size)
            .color(&BLACK)
            .pos(Pos::new(HPos::Right, VPos::Center))
    };
    let center = |size: f64| {
        font(size)
            .color(&BLACK)
            .pos(Pos::new(HPos::Center, VPos::Center))
    };

    // Title and legend.
    let goals = bars.iter().filter(|b| !b.row.verdict.is_empty()).count();
    let met = bars.iter().filter(|b| b.row.verdict == "met").count();
    let skipped = match bars.iter().filter(|b| b.speed.is_none()).count() {
        0 => String::new(),
        1 => ", 1 row skipped".to_owned(),
        n => format!(", {n} rows skipped"),
    };
    let title = format!(
        "multiproc against the floor and its peers: cargo bench --bench versus  ({met} of {goals} goals met{skipped})"
    );
    root.draw(&Text::new(title, (10, 18), left(17.0)))
        .map_err(e)?;
    let legend_y = 44;
    let mut lx = 10;
    for (c, name) in [
        (MET, "goal met"),
        (MISSED, "goal MISSED"),
        (NO_GOAL, "no goal"),
    ] {
        root.draw(&Rectangle::new(
            [(lx, legend_y - 6), (lx + 22, legend_y + 6)],
            c.filled(),
        ))
        .map_err(e)?;
        root.draw(&Text::new(name, (lx + 28, legend_y), left(13.0)))
            .map_err(e)?;
        lx += 130;
    }
    root.draw(&PathElement::new(
        vec![(lx + 10, legend_y - 8), (lx + 10, legend_y + 8)],
        BLACK.stroke_width(3),
    ))
    .map_err(e)?;
    root.draw(&Text::new("the goal", (lx + 20, legend_y), left(13.0)))
        .map_err(e)?;
    lx += 100;
    if let Some(name) = before {
        root.draw(&Circle::new((lx + 8, legend_y), 5, BLACK.stroke_width(2)))
            .map_err(e)?;
        root.draw(&Text::new(
            format!("before: {name}"),
            (lx + 20, legend_y),
            left(13.0),
        ))
        .map_err(e)?;
    }
    root.draw(&Text::new(
        "bars: multiproc / the other side, log scale, right is better (time ratios drawn inverted, as speed); right column: the ratio as printed",
        (10, 68),
        left(12.0),
    ))
    .map_err(e)?;

    // Decade grid, parity (1x) in black.
    let plot_top = TOP - 4;
    let plot_bottom = height - BOTTOM + 4;
    for d in lo..=hi {
        let v = 10f64.powi(d);
        let style = if d == 0 {
            BLACK.stroke_width(1)
        } else {
            GRID.stroke_width(1)
        };
        root.draw(&PathElement::new(
            vec![(x(v), plot_top), (x(v), plot_bottom)],
            style,
        ))
        .map_err(e)?;
        let label = if d >= 0 {
            format!("{v:.0}x")
        } else {
            format!("{v:.*}x", (-d) as usize)
        };
        root.draw(&Text::new(label, (x(v), plot_bottom + 14), center(12.0)))
            .map_err(e)?;
    }
    root.draw(&Text::new(
        "worse than the other side  <-  1x  ->  better",
        ((PLOT_X0 + PLOT_X1) / 2, plot_bottom + 34),
        center(12.0),
    ))
    .map_err(e)?;

    // Rows.
    let mut y = TOP;
    let mut section = "";
    for b in &bars {
        if b.row.section != section {
            section = &b.row.section;
            y += SECTION_H;
            let bold = ("sans-serif", 15.0)
                .into_font()
                .style(FontStyle::Bold)
                .color(&BLACK)
                .pos(Pos::new(HPos::Left, VPos::Center));
            root.draw(&Text::new(
                section.to_owned(),
                (10, y - SECTION_H / 2),
                bold,
            ))
            .map_err(e)?;
        }
        let mid = y + ROW_H / 2;
        let colour = match b.row.verdict.as_str() {
            "met" => MET,
            "MISSED" => MISSED,
            _ => NO_GOAL,
        };
        root.draw(&Text::new(
            short_display(&b.row.display, 88),
            (LABEL_W, mid),
            right(12.0),
        ))
        .map_err(e)?;
        if let Some(speed) = b.speed {
            // At least 4 px, so that a ratio near 1x still shows its colour.
            let (x0, x1) = (x(1.0).min(x(speed)), x(1.0).max(x(speed)));
            let (x0, x1) = if x1 - x0 >= 4 {
                (x0, x1)
            } else if speed >= 1.0 {
                (x0, x0 + 4)
            } else {
                (x1 - 4, x1)
            };
            root.draw(&Rectangle::new(
                [(x0, y + 3), (x1, y + ROW_H - 3)],
                colour.filled(),
            ))
            .map_err(e)?;
        }
        if let Some(g) = b.goal {
            root.draw(&PathElement::new(
                vec![(x(g), y + 1), (x(g), y + ROW_H - 1)],
                BLACK.stroke_width(3),
            ))
            .map_err(e)?;
        }
        if let Some(p) = b.before {
            root.draw(&Circle::new((x(p), mid), 5, BLACK.stroke_width(2)))
                .map_err(e)?;
        }
        let text = match &b.row.before_text {
            Some(t) => format!(
                "{}  (before {})",
                b.row.text,
                t.split(' ').next().unwrap_or("")
            ),
            None => b.row.text.clone(),
        };
        root.draw(&Text::new(
            truncate(&text, 48),
            (PLOT_X1 + 10, mid),
            left(12.0),
        ))
        .map_err(e)?;
        y += ROW_H;
    }
    root.present().map_err(e)?;
    Ok(())
}
