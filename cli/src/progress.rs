//! The rescue's progress bar (indicatif) on stderr, and the one clock and
//! rate formula that both the bar and the summary use, so that the speed the
//! bar shows last is the speed the summary prints.

use std::io::{self, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressState, ProgressStyle, TermLike};

/// When the copy started, and, once it ended, how long it took: the bar's
/// last frame and the summary read the same duration.
#[derive(Clone, Debug)]
pub struct Clock {
    started: Instant,
    /// Nanoseconds of the whole copy; 0 while it runs.
    ended: Arc<AtomicU64>,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            started: Instant::now(),
            ended: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Time since the start, or the whole copy's once [`stop`](Clock::stop)ped.
    pub fn elapsed(&self) -> Duration {
        match self.ended.load(Ordering::Relaxed) {
            0 => self.started.elapsed(),
            nanos => Duration::from_nanos(nanos),
        }
    }

    /// Freezes the duration; later calls keep the first.
    pub fn stop(&self) -> Duration {
        let nanos = (self.started.elapsed().as_nanos() as u64).max(1);
        let _ = self
            .ended
            .compare_exchange(0, nanos, Ordering::Relaxed, Ordering::Relaxed);
        self.elapsed()
    }
}

/// Bytes of the source gone through (copied or found lost) per second, as
/// `12.3 MiB/s`: the one formula of the bar and the summary.
pub fn rate(bytes: u64, elapsed: Duration) -> String {
    format!(
        "{}/s",
        human((bytes as f64 / elapsed.as_secs_f64().max(1e-9)) as u64)
    )
}

/// The bar, hidden when not wanted.
pub struct Progress {
    bar: ProgressBar,
    clock: Clock,
    /// Bytes lost so far, which the template's `{lost}` shows.
    lost: Arc<AtomicU64>,
}

/// `[##########....................]  33.3%  1.0 MiB / 3.0 MiB  lost 4.0 KiB  12.3 MiB/s`
const TEMPLATE: &str = "[{bar:30}] {percent1}  {done} / {total}  lost {lost}  {rate}";

impl Progress {
    /// A bar over `total` bytes on stderr, drawn if `enabled`; `clock` is the
    /// copy's. On a terminal it redraws in place; forced into a pipe or file
    /// (`--progress`), each frame is a line.
    pub fn new(total: u64, enabled: bool, clock: &Clock) -> Progress {
        let target = match (enabled, io::IsTerminal::is_terminal(&io::stderr())) {
            (false, _) => ProgressDrawTarget::hidden(),
            (true, true) => ProgressDrawTarget::stderr_with_hz(10),
            (true, false) => ProgressDrawTarget::term_like_with_hz(Box::new(Lines::default()), 10),
        };
        let rate_clock = clock.clone();
        let lost = Arc::new(AtomicU64::new(0));
        let lost_shown = lost.clone();
        let style = ProgressStyle::with_template(TEMPLATE)
            .expect("a valid template")
            .progress_chars("#.")
            .with_key(
                "percent1",
                |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = write!(w, "{:5.1}%", s.fraction() * 100.0);
                },
            )
            .with_key("done", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&human(s.pos()));
            })
            .with_key("total", |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&human(s.len().unwrap_or(0)));
            })
            .with_key(
                "lost",
                move |_: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&human(lost_shown.load(Ordering::Relaxed)));
                },
            )
            .with_key(
                "rate",
                move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                    let _ = w.write_str(&rate(s.pos(), rate_clock.elapsed()));
                },
            );
        let bar = ProgressBar::with_draw_target(Some(total), target).with_style(style);
        Progress {
            bar,
            clock: clock.clone(),
            lost,
        }
    }

    /// `done` bytes of the source gone through, `lost` of them lost.
    pub fn update(&self, done: u64, lost: u64) {
        self.lost.store(lost, Ordering::Relaxed);
        self.bar.set_position(done);
    }

    /// The source turned out to be `total` bytes (it shrank under the copy).
    pub fn set_total(&self, total: u64) {
        self.bar.set_length(total);
    }

    /// Stops the clock and draws the last frame, with the summary's rate.
    pub fn finish(&self, done: u64, lost: u64) {
        self.clock.stop();
        self.lost.store(lost, Ordering::Relaxed);
        self.bar.set_position(done);
        self.bar.finish();
    }
}

/// A draw target for stderr when it is not a terminal: one line per frame.
#[derive(Debug, Default)]
struct Lines {
    /// A frame was written since the last newline.
    open: AtomicBool,
}

impl TermLike for Lines {
    fn width(&self) -> u16 {
        100
    }

    fn move_cursor_up(&self, _: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_down(&self, _: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_right(&self, _: usize) -> io::Result<()> {
        Ok(())
    }

    fn move_cursor_left(&self, _: usize) -> io::Result<()> {
        Ok(())
    }

    fn write_line(&self, s: &str) -> io::Result<()> {
        self.open.store(false, Ordering::Relaxed);
        writeln!(io::stderr(), "{}", s.trim_end())
    }

    fn write_str(&self, s: &str) -> io::Result<()> {
        self.open.store(true, Ordering::Relaxed);
        write!(io::stderr(), "{}", s.trim_end())
    }

    fn clear_line(&self) -> io::Result<()> {
        Ok(())
    }

    /// Ends the frame's line: a pipe or a log file gets one line per frame.
    fn flush(&self) -> io::Result<()> {
        if self.open.swap(false, Ordering::Relaxed) {
            writeln!(io::stderr())?;
        }
        io::stderr().flush()
    }
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
    fn sizes_read_in_binary_units() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(4096), "4.0 KiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
    }

    #[test]
    fn a_stopped_clock_keeps_its_duration_and_the_rate_follows_it() {
        let clock = Clock::start();
        std::thread::sleep(Duration::from_millis(5));
        let took = clock.stop();
        std::thread::sleep(Duration::from_millis(5));
        assert_eq!(clock.elapsed(), took);
        assert_eq!(clock.stop(), took);
        assert_eq!(rate(3 << 20, Duration::from_secs(2)), "1.5 MiB/s");
    }
}
