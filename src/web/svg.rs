//! What the server-rendered SVG charts share: a linear map from data to drawing coordinates,
//! its tick marks, and polyline points. The templates draw; these compute where.

use std::fmt::Write;

/// A linear map of the data interval `[d0, d1]` onto the drawing interval `[r0, r1]` (which
/// may run backwards, as a y axis does); values outside the data interval are clamped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Axis {
    d0: f64,
    d1: f64,
    r0: f64,
    r1: f64,
}

impl Axis {
    /// An empty data interval is widened so that the map stays finite.
    pub fn new((d0, d1): (f64, f64), (r0, r1): (f64, f64)) -> Axis {
        let d1 = if d1 - d0 > 1e-12 { d1 } else { d0 + 1.0 };
        Axis { d0, d1, r0, r1 }
    }

    /// Where `v` is drawn.
    pub fn at(&self, v: f64) -> f64 {
        let share = ((v - self.d0) / (self.d1 - self.d0)).clamp(0.0, 1.0);
        self.r0 + share * (self.r1 - self.r0)
    }

    /// The drawn length of `v` from the start of the data interval.
    pub fn length(&self, v: f64) -> f64 {
        (self.at(v) - self.r0).abs()
    }

    /// `n + 1` evenly spaced ticks from `d0` to `d1`: `(position, value)`.
    pub fn ticks(&self, n: u32) -> Vec<(f64, f64)> {
        let n = n.max(1);
        (0..=n)
            .map(|i| {
                let v = self.d0 + (self.d1 - self.d0) * f64::from(i) / f64::from(n);
                (self.at(v), v)
            })
            .collect()
    }
}

/// The `points` attribute of a polyline through `(x, y)` pairs.
pub fn points(xy: impl IntoIterator<Item = (f64, f64)>) -> String {
    xy.into_iter().fold(String::new(), |mut s, (x, y)| {
        let _ = write!(s, "{x:.1},{y:.1} ");
        s
    })
}

/// The smallest "nice" upper bound (1, 2 or 5 × 10ⁿ, at least `max`) for a count axis, and
/// the tick step that divides it into at most five parts.
pub fn count_scale(max: usize) -> (usize, usize) {
    let max = max.max(1);
    let mut step = 1;
    loop {
        for m in [1, 2, 5] {
            let s = step * m;
            if s * 5 >= max {
                return (max.div_ceil(s) * s, s);
            }
        }
        step *= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_map_clamp_and_tick() {
        let x = Axis::new((0.0, 0.4), (40.0, 600.0));
        assert_eq!(x.at(0.2), 320.0);
        assert_eq!(x.at(1.0), 600.0);
        let y = Axis::new((0.0, 1.0), (230.0, 10.0));
        assert_eq!(y.at(1.0), 10.0);
        assert_eq!(y.length(0.5), 110.0);
        let ticks = x.ticks(4);
        assert_eq!(ticks.len(), 5);
        assert_eq!(ticks[4], (600.0, 0.4));
        assert_eq!(Axis::new((3.0, 3.0), (0.0, 10.0)).at(3.0), 0.0);
        assert_eq!(points([(1.0, 2.0), (3.24, 4.0)]), "1.0,2.0 3.2,4.0 ");
    }

    #[test]
    fn count_scales_are_round() {
        assert_eq!(count_scale(0), (1, 1));
        assert_eq!(count_scale(3), (3, 1));
        assert_eq!(count_scale(7), (8, 2));
        assert_eq!(count_scale(23), (25, 5));
        assert_eq!(count_scale(48), (50, 10));
        assert_eq!(count_scale(130), (150, 50));
    }
}
