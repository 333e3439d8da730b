//! The files `bench` and `perplexity` write beside their report: the check
//! of an output path before a run, and one SVG line chart (a y axis from 0,
//! tick marks at the points, an optional shaded range around the line).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{ensure, Result};

/// Refuses, before the run, an output path that is a directory or in a
/// directory that does not exist.
pub fn check_target(flag: &str, path: &Path) -> Result<()> {
    let shown = path.display();
    ensure!(
        !path.is_dir(),
        "{flag} {shown} is a directory, expected a file name"
    );
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    ensure!(
        parent.is_dir(),
        "{flag} {shown}: the directory {} does not exist",
        parent.display()
    );
    Ok(())
}

/// One point of a [`line_chart`].
#[derive(Clone, Debug, PartialEq)]
pub struct ChartPoint {
    /// Horizontal position on any increasing scale (the chart spans the
    /// first to the last point's `x`).
    pub x: f64,
    /// Label of the tick mark under the point.
    pub tick: String,
    /// The value; `None` draws the tick only, and breaks the line there.
    pub y: Option<f64>,
    /// A range shaded around the line (`(low, high)`), if any.
    pub band: Option<(f64, f64)>,
    /// Tooltip of the point's marker.
    pub tip: String,
}

/// Titles of a [`line_chart`].
pub struct ChartText<'a> {
    pub title: &'a str,
    pub x_label: &'a str,
    pub y_label: &'a str,
}

/// Colours of the line and its markers, and of the band.
const LINE: &str = "#1f5fa8";
const BAND: &str = "#4a90d9";

/// An SVG line chart of `points` (in order of `x`): y from 0 to a round
/// number above the largest value (or band top), a tick and a label under
/// every point, a marker with a tooltip on every value.
pub fn line_chart(points: &[ChartPoint], text: &ChartText) -> String {
    let (w, h) = (720.0f64, 420.0f64);
    let (left, right, top, bottom) = (70.0, 20.0, 40.0, 60.0);
    let (pw, ph) = (w - left - right, h - top - bottom);
    let lo = points.first().map_or(0.0, |p| p.x);
    let hi = points.last().map_or(1.0, |p| p.x).max(lo + 1.0);
    let ymax_data = points.iter().filter_map(|p| p.y).fold(0.0f64, f64::max);
    let ymax = nice_ceiling(ymax_data * 1.25);
    let x = |v: f64| left + ((v - lo) / (hi - lo)) * pw;
    let y = |v: f64| top + ph - (v / ymax).clamp(0.0, 1.0) * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        w / 2.0,
        xml_escape(text.title)
    );
    // Grid and y ticks.
    for i in 0..=5 {
        let v = ymax * i as f64 / 5.0;
        let yy = y(v);
        let _ = writeln!(
            s,
            r##"<line x1="{left}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            left + pw,
            left - 6.0,
            yy + 4.0,
            format_tick(v)
        );
    }
    // x ticks: every point.
    for p in points {
        let xx = x(p.x);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="#999"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            top + ph,
            top + ph + 5.0,
            top + ph + 18.0,
            xml_escape(&p.tick)
        );
    }
    // Axes.
    let _ = writeln!(
        s,
        r#"<polyline points="{left},{top} {left},{:.1} {:.1},{:.1}" fill="none" stroke="black"/>"#,
        top + ph,
        left + pw,
        top + ph
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
        left + pw / 2.0,
        h - 18.0,
        xml_escape(text.x_label)
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">{}</text>"#,
        top + ph / 2.0,
        top + ph / 2.0,
        xml_escape(text.y_label)
    );
    // The band and the line, one piece per run of points with values, then
    // the markers.
    for run in points.split(|p| p.y.is_none()).filter(|r| !r.is_empty()) {
        if run.iter().all(|p| p.band.is_some()) {
            let upper: Vec<String> = run
                .iter()
                .filter_map(|p| p.band.map(|(_, hi)| format!("{:.1},{:.1}", x(p.x), y(hi))))
                .collect();
            let lower: Vec<String> = run
                .iter()
                .rev()
                .filter_map(|p| p.band.map(|(lo, _)| format!("{:.1},{:.1}", x(p.x), y(lo))))
                .collect();
            let _ = writeln!(
                s,
                r##"<polygon points="{} {}" fill="{BAND}" fill-opacity="0.15" stroke="none"/>"##,
                upper.join(" "),
                lower.join(" ")
            );
        }
        let line: Vec<String> = run
            .iter()
            .filter_map(|p| p.y.map(|v| format!("{:.1},{:.1}", x(p.x), y(v))))
            .collect();
        let _ = writeln!(
            s,
            r##"<polyline points="{}" fill="none" stroke="{LINE}" stroke-width="2"/>"##,
            line.join(" ")
        );
    }
    for p in points {
        if let Some(v) = p.y {
            let _ = writeln!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{LINE}"><title>{}</title></circle>"##,
                x(p.x),
                y(v),
                xml_escape(&p.tip)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

pub fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// 1, 2 or 5 times a power of ten, at least `v` (and positive).
pub fn nice_ceiling(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

fn format_tick(v: f64) -> String {
    if v >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(x: f64, y: Option<f64>) -> ChartPoint {
        ChartPoint {
            x,
            tick: format!("t{x}"),
            y,
            band: None,
            tip: format!("at {x}"),
        }
    }

    #[test]
    fn gaps_break_the_line_and_get_no_marker() {
        let pts = [
            point(0.0, Some(1.0)),
            point(1.0, Some(2.0)),
            point(2.0, None),
            point(3.0, Some(1.5)),
            point(4.0, None),
        ];
        let s = line_chart(
            &pts,
            &ChartText {
                title: "t",
                x_label: "x",
                y_label: "y",
            },
        );
        assert!(s.starts_with("<svg") && s.trim_end().ends_with("</svg>"));
        // The axes, then one line of two points and one of one.
        assert_eq!(s.matches("<polyline").count(), 3, "{s}");
        assert_eq!(s.matches("<circle").count(), 3);
        // A tick for every point, the gaps included.
        assert_eq!(s.matches(r##"stroke="#999""##).count(), 5);
        assert!(!s.contains("NaN"));
        // No value at all: axes and ticks only.
        let s = line_chart(
            &[point(0.0, None)],
            &ChartText {
                title: "t",
                x_label: "x",
                y_label: "y",
            },
        );
        assert_eq!(s.matches("<circle").count(), 0);
        assert!(!s.contains("NaN"));
    }

    #[test]
    fn round_ceilings() {
        assert_eq!(nice_ceiling(130.0), 200.0);
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(f64::NAN), 1.0);
        assert_eq!(nice_ceiling(2.4), 5.0);
    }
}
