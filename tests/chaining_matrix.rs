//! The chaining matrix: every SIGBUS action installed *before* mcsafe, times
//! every handler installed *after* it, times four kinds of SIGBUS. Each cell
//! runs twice, each time in a child process of its own: with mcsafe, and
//! without it (the same program, never calling mcsafe). The recording handlers
//! (`common/recorder.rs`) log every call in order; the parent then checks that
//!
//! 1. with mcsafe, each cell does what it does without mcsafe (the same handler
//!    calls, with the same signal numbers and codes, in the same order, between
//!    the same steps, and the same end), except where [`expected_with`] says
//!    otherwise: a copy fault is recovered wherever something passes it on to
//!    mcsafe, and a handler that chains to a `SIG_DFL` / `SIG_IGN` it does not
//!    apply (so that the fault would repeat forever) dies by the default action
//!    instead of looping;
//! 2. `mcsafe::install()` says `Ok` unless the handler installed after mcsafe
//!    does not chain;
//! 3. the table in `docs/reliability.md` is the one these runs give
//!    (`MCSAFE_WRITE_MATRIX=1` rewrites it).
//!
//! A chain that recurses (the defect of issue 11) ends in SIGSEGV, one that
//! loops in the recorder's `LOOP` exit: both show in the table.

mod common;
#[path = "common/recorder.rs"]
mod recorder;

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};

use common::*;
use recorder::{End, Run, address, is_call, mark};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Before {
    /// Nothing: Rust std's handler, in every Rust program.
    Std,
    Returns,
    Exits,
    Plain,
    Default,
    Ignore,
    ResetHand,
}

const BEFORE: [Before; 7] = [
    Before::Std,
    Before::Returns,
    Before::Exits,
    Before::Plain,
    Before::Default,
    Before::Ignore,
    Before::ResetHand,
];

impl Before {
    fn describe(self) -> &'static str {
        match self {
            Before::Std => "nothing (Rust std's handler)",
            Before::Returns => "`SA_SIGINFO` handler that returns",
            Before::Exits => "`SA_SIGINFO` handler that exits",
            Before::Plain => "plain `sa_handler` that returns",
            Before::Default => "`SIG_DFL`",
            Before::Ignore => "`SIG_IGN`",
            Before::ResetHand => "`SA_SIGINFO \\| SA_RESETHAND` handler that returns",
        }
    }

    fn install(self) {
        use recorder::*;
        let (handler, flags) = match self {
            Before::Std => {
                let std = current_action().sa_sigaction;
                assert!(
                    std != libc::SIG_DFL && std != libc::SIG_IGN,
                    "std's handler"
                );
                return;
            }
            Before::Returns => (address(previous_returns as *const ()), libc::SA_SIGINFO),
            Before::Exits => (address(previous_exits as *const ()), libc::SA_SIGINFO),
            Before::Plain => (address(previous_plain as *const ()), 0),
            Before::Default => (libc::SIG_DFL, 0),
            Before::Ignore => (libc::SIG_IGN, 0),
            Before::ResetHand => (
                address(previous_returns as *const ()),
                libc::SA_SIGINFO | libc::SA_RESETHAND,
            ),
        };
        set_action(handler, flags);
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum After {
    Nothing,
    SignalHook,
    Chainer,
    NonChainer,
}

const AFTER: [After; 4] = [
    After::Nothing,
    After::SignalHook,
    After::Chainer,
    After::NonChainer,
];

impl After {
    fn describe(self) -> &'static str {
        match self {
            After::Nothing => "nothing",
            After::SignalHook => "`signal-hook` (S)",
            After::Chainer => "chainer (C)",
            After::NonChainer => "non-chaining (N)",
        }
    }

    fn install(self) {
        match self {
            After::Nothing => {}
            After::SignalHook => recorder::register_signal_hook(),
            After::Chainer => recorder::install_chainer(),
            After::NonChainer => {
                let handler = address(recorder::non_chainer as *const ());
                recorder::set_action(handler, libc::SA_SIGINFO);
            }
        }
    }

    /// Whether copy faults reach mcsafe's handler through it.
    fn chains(self) -> bool {
        self != After::NonChainer
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Event {
    CopyFault,
    ThreeKills,
    FaultOutside,
    ForeignAo,
}

const EVENTS: [Event; 4] = [
    Event::CopyFault,
    Event::ThreeKills,
    Event::FaultOutside,
    Event::ForeignAo,
];

impl Event {
    fn describe(self) -> &'static str {
        match self {
            Event::CopyFault => "copy fault",
            Event::ThreeKills => "three `tgkill` SIGBUS",
            Event::FaultOutside => "fault outside a copy",
            Event::ForeignAo => "`BUS_MCEERR_AO` queued",
        }
    }
}

// ---- the child: one cell, with or without mcsafe ----

fn cell(before: Before, after: After, event: Event, with_mcsafe: bool) {
    recorder::start();
    before.install();
    if with_mcsafe {
        mcsafe::install().unwrap();
    }
    after.install();
    let top = recorder::current_action().sa_sigaction;
    if with_mcsafe {
        mark(&format!("install {:?}", mcsafe::install()));
    }
    match event {
        Event::CopyFault => {
            let lost = LostTail::new(1, 1, 3);
            let mut dst = vec![0u8; 2 * PAGE];
            mark("copy");
            if with_mcsafe {
                // SAFETY: the mapping's second page is lost.
                let result = unsafe { mcsafe::copy_mc(dst.as_mut_ptr(), lost.base(), 2 * PAGE) };
                let exact = result.is_err_and(|f| f.copied() == PAGE);
                mark(if exact { "recovered" } else { "not recovered" });
            } else {
                // What memcpy does.
                // SAFETY: the mapping's second page is lost: SIGBUS (the point).
                unsafe { std::ptr::copy_nonoverlapping(lost.base(), dst.as_mut_ptr(), 2 * PAGE) };
                std::hint::black_box(&dst);
            }
        }
        Event::ThreeKills => {
            for i in 1..=3 {
                mark(&format!("kill {i}"));
                recorder::tgkill_self();
            }
        }
        Event::FaultOutside => {
            let lost = LostTail::new(1, 1, 0);
            mark("touch");
            // SAFETY: the page is lost: SIGBUS, and again each time it runs.
            unsafe { lost.boundary().read_volatile() };
        }
        Event::ForeignAo => {
            let buf = vec![0u8; 2 * PAGE];
            mark("ao");
            let page = (buf.as_ptr() as usize + PAGE) & !(PAGE - 1);
            recorder::queue_to_self(libc::BUS_MCEERR_AO, page, 12);
        }
    }
    if after != After::Nothing {
        let kept = recorder::current_action().sa_sigaction == top;
        mark(if kept { "top kept" } else { "top gone" });
    }
    mark("end");
}

// ---- the parent: outcomes, expectations, the table ----

/// How a cell's run reads in the table.
trait Render {
    fn render(&self) -> String;
}

impl Render for Run {
    /// One line for the table: the calls of each step (each `tgkill`), `–`
    /// for none, then how it ended; a loop shows its first round.
    fn render(&self) -> String {
        let mut steps: Vec<Vec<&str>> = Vec::new();
        let mut notes = Vec::new();
        for line in &self.log {
            match line.as_str() {
                "copy" | "touch" | "ao" => steps.push(Vec::new()),
                kill if kill.starts_with("kill ") => steps.push(Vec::new()),
                "recovered" | "not recovered" | "top gone" => notes.push(line.as_str()),
                call if is_call(call) => {
                    if let Some(step) = steps.last_mut() {
                        step.push(&call[..1]);
                    }
                }
                _ => {}
            }
        }
        let looped = self.end == End::Exit(recorder::EXIT_LOOP);
        if !notes.is_empty() && steps.iter().all(Vec::is_empty) {
            steps.clear();
        }
        let text: Vec<String> = steps
            .iter()
            .map(|calls| {
                let round = match calls.iter().skip(1).position(|c| *c == calls[0]) {
                    Some(n) if looped => &calls[..=n],
                    _ => &calls[..],
                };
                match (round.is_empty(), looped) {
                    (true, _) => "–".to_owned(),
                    (false, true) => format!("{} …", round.join(" ")),
                    (false, false) => round.join(" "),
                }
            })
            .collect();
        let notes: Vec<&str> = notes
            .iter()
            .map(|n| {
                if *n == "not recovered" {
                    "**not recovered**"
                } else {
                    n
                }
            })
            .collect();
        let mut text = text.join(" · ");
        if !notes.is_empty() {
            let sep = if text.is_empty() { "" } else { ", " };
            text = format!("{text}{sep}{}", notes.join(", "));
        }
        let end = match &self.end {
            End::Lives => "lives".to_owned(),
            End::Exit(recorder::EXIT_LOOP) => "loops".to_owned(),
            End::Exit(code) => format!("exit {code}"),
            End::Killed(libc::SIGBUS) => "SIGBUS".to_owned(),
            End::Killed(libc::SIGSEGV) => "**SIGSEGV**".to_owned(),
            End::Killed(sig) => format!("signal {sig}"),
        };
        format!("{text} → {end}")
    }
}

/// What the cell must do with mcsafe, given what it did without.
fn expected_with(before: Before, after: After, event: Event, without: &Run) -> Run {
    let mut log = without.log.clone();
    let mut end = without.end.clone();
    match event {
        // Recovered wherever it reaches mcsafe: then the handler installed after
        // mcsafe has seen it first (it cannot tell), and nothing else has.
        Event::CopyFault if after.chains() => {
            log = vec!["copy".to_owned()];
            match after {
                After::Chainer => log.push("C 7 2".to_owned()),
                After::SignalHook => log.push("S 7 2".to_owned()),
                _ => {}
            }
            log.push("recovered".to_owned());
            if after != After::Nothing {
                log.push("top kept".to_owned());
            }
            log.push("end".to_owned());
            end = End::Lives;
        }
        // The chaining handler does not apply the SIG_DFL / SIG_IGN it replaced,
        // so without mcsafe the fault repeats forever; with it, the kernel's
        // default action applies after the first round.
        Event::FaultOutside
            if after.chains()
                && after != After::Nothing
                && matches!(before, Before::Default | Before::Ignore) =>
        {
            let first_call = log
                .iter()
                .position(|l| is_call(l))
                .map_or(log.len(), |i| i + 1);
            log.truncate(first_call);
            end = End::Killed(libc::SIGBUS);
        }
        _ => {}
    }
    Run { log, end }
}

fn expected_install(after: After) -> String {
    match after {
        After::NonChainer => format!(
            "install Err(Replaced(Exited({})))",
            recorder::EXIT_NON_CHAINER
        ),
        _ => "install Ok(())".to_owned(),
    }
}

const TEST: &str = "matrix";

fn run(before: usize, after: usize, event: usize, with: bool) -> Run {
    let spec = format!("{before},{after},{event},{}", u8::from(with));
    Run::of(&child_output(TEST, &[("MCSAFE_CELL", &spec)]))
}

#[test]
fn matrix() {
    if qemu_user_cannot("matrix", qemu_user::RE_SENT_FAULT) {
        return;
    }
    if let Ok(spec) = std::env::var("MCSAFE_CELL") {
        let n: Vec<usize> = spec.split(',').map(|n| n.parse().unwrap()).collect();
        in_child(TEST, || {
            cell(BEFORE[n[0]], AFTER[n[1]], EVENTS[n[2]], n[3] == 1)
        });
        return;
    }
    let cells: Vec<(usize, usize, usize)> = (0..BEFORE.len())
        .flat_map(|b| (0..AFTER.len()).flat_map(move |a| (0..EVENTS.len()).map(move |e| (b, a, e))))
        .collect();
    let results = Mutex::new(vec![None; cells.len()]);
    let next = AtomicUsize::new(0);
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, SeqCst);
                    let Some(&(b, a, e)) = cells.get(i) else {
                        break;
                    };
                    let pair = (run(b, a, e, false), run(b, a, e, true));
                    results.lock().unwrap()[i] = Some(pair);
                }
            });
        }
    });
    let results: Vec<(Run, Run)> = results
        .into_inner()
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    eprintln!(
        "{} cells, twice each, in {:?}",
        cells.len(),
        started.elapsed()
    );

    let mut failures = Vec::new();
    for (&(b, a, e), (without, with)) in cells.iter().zip(&results) {
        let (before, after, event) = (BEFORE[b], AFTER[a], EVENTS[e]);
        let want = expected_with(before, after, event, without);
        let install = with.log.iter().find(|l| l.starts_with("install "));
        if with.comparable() != want || install != Some(&expected_install(after)) {
            failures.push(format!(
                "{before:?} x {after:?} x {event:?}:\n  without {without:?}\n  with    {with:?}\n  wanted  {want:?} and {}",
                expected_install(after)
            ));
        }
    }

    let table = render_table(&cells, &results);
    let doc_path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/reliability.md");
    let doc = std::fs::read_to_string(doc_path).unwrap_or_default();
    let (begin, end) = ("<!-- matrix:begin -->\n", "<!-- matrix:end -->");
    let current = doc
        .split_once(begin)
        .and_then(|(_, rest)| rest.split_once(end))
        .map(|(table, _)| table);
    // The documented table is compared where the docs are (not in the arm64
    // VM, which runs this binary alone: there each cell is checked against the
    // same run without mcsafe).
    let whole = std::path::Path::new(doc_path).exists();
    if !whole {
        eprintln!("the table is not compared with docs/reliability.md here:\n{table}");
    }
    if whole && current != Some(table.as_str()) {
        if std::env::var_os("MCSAFE_WRITE_MATRIX").is_some() {
            let (head, rest) = doc
                .split_once(begin)
                .expect("the markers in docs/reliability.md");
            let (_, tail) = rest.split_once(end).unwrap();
            std::fs::write(doc_path, format!("{head}{begin}{table}{end}{tail}")).unwrap();
            eprintln!("rewrote the table in {doc_path}");
        } else {
            failures.push(format!(
                "docs/reliability.md's matrix differs from these runs (MCSAFE_WRITE_MATRIX=1 rewrites it):\n{table}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The markdown table of the runs with mcsafe: one row per (before, after),
/// one column per event; ¹ where that differs from the run without mcsafe.
fn render_table(cells: &[(usize, usize, usize)], results: &[(Run, Run)]) -> String {
    let mut table = String::from("| before mcsafe | after mcsafe |");
    for event in EVENTS {
        write!(table, " {} |", event.describe()).unwrap();
    }
    table.push_str("\n|---|---|");
    table.push_str(&"---|".repeat(EVENTS.len()));
    table.push('\n');
    for (row, chunk) in results.chunks(EVENTS.len()).enumerate() {
        let (b, a, _) = cells[row * EVENTS.len()];
        write!(
            table,
            "| {} | {} |",
            BEFORE[b].describe(),
            AFTER[a].describe()
        )
        .unwrap();
        for (e, (without, with)) in chunk.iter().enumerate() {
            let differs = with.comparable() != *without && EVENTS[e] != Event::CopyFault;
            let mark = if differs { " ¹" } else { "" };
            write!(table, " {}{mark} |", with.render()).unwrap();
        }
        table.push('\n');
    }
    table
}
