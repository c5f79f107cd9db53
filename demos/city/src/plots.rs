//! The pictures `city` draws at the end (with `plotters`): the run over
//! time, and a map of the city coloured by traffic.

use std::path::Path;

use city::{GAP, LANE_LENGTH, unpack};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

/// The font of every label (DejaVu Sans, shipped with the demo so that a
/// fresh machine without fonts draws the same pictures).
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

type Failure = Box<dyn std::error::Error>;

/// Picks a value out of a timeline point.
type Value = fn(&(f64, f64, f64, f64)) -> f64;

/// Registers the labels' font; call once before drawing.
pub fn init() -> Result<(), Failure> {
    register_font("sans-serif", FontStyle::Normal, FONT)
        .map_err(|_| "the bundled font does not load".into())
}

/// What the run recorded each simulated second.
pub struct Timeline {
    /// Simulated seconds, turns per second of wall time, average speed
    /// (km/h), and the share of vehicles standing.
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// `run.png`: turns per second (wall time) and average speed over the
/// simulated time, one above the other.
pub fn timeline(path: &Path, timeline: &Timeline, title: &str) -> Result<(), Failure> {
    let root = BitMapBackend::new(path, (1000, 700)).into_drawing_area();
    root.fill(&WHITE)?;
    let root = root.titled(title, ("sans-serif", 24))?;
    let (top, bottom) = root.split_vertically(330);
    let end = timeline.points.last().map_or(1.0, |p| p.0).max(1.0);
    let turns_per_s: Value = |p| p.1;
    let speed: Value = |p| p.2;
    let panels = [
        (&top, "turns per second (wall clock)", turns_per_s, BLUE),
        (&bottom, "average speed (km/h)", speed, RED),
    ];
    for (area, label, value, colour) in panels {
        let max = timeline
            .points
            .iter()
            .map(value)
            .fold(0.0f64, f64::max)
            .max(1.0)
            * 1.15;
        let mut chart = ChartBuilder::on(area)
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(0.0..end, 0.0..max)?;
        chart
            .configure_mesh()
            .x_desc("simulated time (s)")
            .y_desc(label)
            .label_style(("sans-serif", 15))
            .axis_desc_style(("sans-serif", 16))
            .draw()?;
        chart.draw_series(LineSeries::new(
            timeline.points.iter().map(|p| (p.0, value(p))),
            colour.stroke_width(2),
        ))?;
    }
    root.present()?;
    Ok(())
}

/// `map.png`: every lane as a short line beside its street, coloured by
/// how full it is (vehicles / the vehicles it holds bumper to bumper); on
/// grids too large for that, each intersection's square coloured by the
/// mean load of the lanes that end there. `loads` are (end intersection,
/// direction, vehicles) of every lane.
pub fn map(
    path: &Path,
    (w, h): (u32, u32),
    loads: &[(u32, u8, usize)],
    title: &str,
) -> Result<(), Failure> {
    // Pixels per block: the map is about 720 pixels wide (more for very
    // large grids, at 3 pixels per block).
    let cell = (720 / w.max(h)).clamp(3, 40) as i32;
    let (pw, ph) = (w as i32 * cell + 2 * cell, h as i32 * cell + 2 * cell);
    let legend: i32 = 60;
    let root =
        BitMapBackend::new(path, (pw as u32 + 200, (ph + legend) as u32)).into_drawing_area();
    root.fill(&RGBColor(245, 245, 245))?;
    let (area, _) = root.split_vertically(legend as u32);
    area.draw(&Text::new(title, (10, 12), ("sans-serif", 22)))?;
    let capacity = (LANE_LENGTH / GAP) as f64;
    let offset = (cell / 6).max(1);
    // Screen position of intersection (x, y): y grows upwards.
    let at = |x: u32, y: u32| (cell + x as i32 * cell, legend + ph - cell - y as i32 * cell);
    if cell >= 8 {
        // Blocks big enough to show lanes: each lane beside its street.
        for &(to, dir, vehicles) in loads {
            let (x, y) = unpack(to);
            let (ex, ey) = at(x, y);
            // The lane's start is one block back against its direction;
            // each direction is drawn a little to its right, so both show.
            let (dx, dy, ox, oy) = match dir {
                city::EAST => (-cell, 0, 0, offset),
                city::NORTH => (0, cell, offset, 0),
                city::WEST => (cell, 0, 0, -offset),
                _ => (0, -cell, -offset, 0),
            };
            let load = (vehicles as f64 / capacity).min(1.0);
            root.draw(&PathElement::new(
                vec![(ex + dx + ox, ey + dy + oy), (ex + ox, ey + oy)],
                traffic_colour(load).stroke_width((cell as u32 / 8).max(1)),
            ))?;
        }
    } else {
        // Lanes would be a texture: colour each intersection's square by
        // the mean load of the lanes that end there.
        let mut sums = vec![(0.0f64, 0u32); (w * h) as usize];
        for &(to, _, vehicles) in loads {
            let (x, y) = unpack(to);
            let sum = &mut sums[(y * w + x) as usize];
            sum.0 += (vehicles as f64 / capacity).min(1.0);
            sum.1 += 1;
        }
        for y in 0..h {
            for x in 0..w {
                let (sum, n) = sums[(y * w + x) as usize];
                let (cx, cy) = at(x, y);
                let half = cell / 2;
                root.draw(&Rectangle::new(
                    [(cx - half, cy - half), (cx - half + cell, cy - half + cell)],
                    traffic_colour(sum / f64::from(n.max(1))).filled(),
                ))?;
            }
        }
    }
    // Legend: the colour scale.
    let lx = pw + 30;
    root.draw(&Text::new(
        "lane load",
        (lx, legend + 10),
        ("sans-serif", 18),
    ))?;
    for step in 0..=10 {
        let load = step as f64 / 10.0;
        let y = legend + 40 + (10 - step) * 22;
        root.draw(&Rectangle::new(
            [(lx, y), (lx + 30, y + 20)],
            traffic_colour(load).filled(),
        ))?;
        root.draw(&Text::new(
            format!("{:.0}%", 100.0 * load),
            (lx + 40, y + 2),
            ("sans-serif", 15),
        ))?;
    }
    root.present()?;
    Ok(())
}

/// Green (empty) through yellow to dark red (bumper to bumper).
fn traffic_colour(load: f64) -> RGBColor {
    let load = load.clamp(0.0, 1.0);
    if load < 0.5 {
        let t = load / 0.5;
        RGBColor((40.0 + 210.0 * t) as u8, (170.0 + 40.0 * t) as u8, 60)
    } else {
        let t = (load - 0.5) / 0.5;
        RGBColor(
            (250.0 - 90.0 * t) as u8,
            (210.0 - 190.0 * t) as u8,
            (60.0 - 40.0 * t) as u8,
        )
    }
}
