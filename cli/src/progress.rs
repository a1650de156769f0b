//! A hand-written progress bar on stderr, redrawn at most ten times a second.

use std::io::Write;
use std::time::{Duration, Instant};

pub struct Progress {
    total: u64,
    started: Instant,
    last_draw: Option<Instant>,
    enabled: bool,
}

const WIDTH: usize = 30;

impl Progress {
    pub fn new(total: u64, enabled: bool) -> Progress {
        Progress {
            total,
            started: Instant::now(),
            last_draw: None,
            enabled,
        }
    }

    /// Redraws the bar if enough time has passed since the last redraw.
    pub fn update(&mut self, done: u64, lost: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if self
            .last_draw
            .is_some_and(|t| now.duration_since(t) < Duration::from_millis(100))
        {
            return;
        }
        self.last_draw = Some(now);
        let line = bar(done, lost, self.total, now.duration_since(self.started));
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r{line}\x1b[K");
        let _ = err.flush();
    }

    /// Draws the final state and ends the line.
    pub fn finish(&mut self, done: u64, lost: u64) {
        if self.enabled {
            self.last_draw = None;
            self.update(done, lost);
            eprintln!();
        }
    }
}

/// One line: `[#####.....]  50.0%  512.0 MiB / 1.0 GiB  1 lost (4.0 KiB)  800.0 MiB/s`.
pub fn bar(done: u64, lost: u64, total: u64, elapsed: Duration) -> String {
    let fraction = if total == 0 {
        1.0
    } else {
        done as f64 / total as f64
    };
    let filled = ((fraction * WIDTH as f64) as usize).min(WIDTH);
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-6);
    format!(
        "[{}{}] {:5.1}%  {} / {}  lost {}  {}/s",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled),
        fraction * 100.0,
        human(done),
        human(total),
        human(lost),
        human(rate as u64)
    )
}

/// Bytes in binary units with one decimal: `4.0 KiB`, `1.5 GiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_progress() {
        let half = bar(50, 0, 100, Duration::from_secs(1));
        assert!(half.starts_with(&format!("[{}{}]", "#".repeat(15), ".".repeat(15))));
        assert!(half.contains(" 50.0%"), "{half}");
        let done = bar(100, 4096, 100, Duration::from_secs(1));
        assert!(
            done.contains("100.0%") && done.contains("lost 4.0 KiB"),
            "{done}"
        );
        assert!(bar(0, 0, 0, Duration::ZERO).contains("100.0%"));
    }

    #[test]
    fn sizes_read_in_binary_units() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(4096), "4.0 KiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }
}
