//! What mcsafe's handler knows of the actions (signal context, under the lints
//! and forbidden macros of `signal/mod.rs`): the previous action and mcsafe's
//! own as `install` saved them (write-once slots), what has become of the
//! previous handler since ([`Disposition`], one atomic), and the conversions
//! from and to `libc::sigaction`.

use core::ffi::c_int;
use core::mem::MaybeUninit;
use core::ptr;
use core::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering::*};

/// The previous action and mcsafe's, as `install` saved them.
pub(in super::super) static SAVED: Saved = Saved {
    slots: [Pair::empty(), Pair::empty()],
    published: AtomicUsize::new(0),
};
/// What has become of the previous action's handler (rules 4 and 3's
/// `SA_RESETHAND`). One atomic: a store cannot be left half done, and nothing
/// ever waits to make one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Disposition {
    /// The saved action applies.
    AsSaved = 0,
    /// `SIG_DFL` in its place.
    Default = 1,
    /// `SIG_IGN` in its place.
    Ignore = 2,
}

static DISPOSITION: AtomicU8 = AtomicU8::new(Disposition::AsSaved as u8);

impl Disposition {
    pub(super) fn now() -> Disposition {
        match DISPOSITION.load(Relaxed) {
            1 => Disposition::Default,
            2 => Disposition::Ignore,
            _ => Disposition::AsSaved,
        }
    }

    pub(super) fn set(self) {
        DISPOSITION.store(self as u8, Relaxed);
    }

    /// The handler that applies in place of `saved`'s.
    pub(super) fn handler(self, saved: Action) -> usize {
        match self {
            Disposition::AsSaved => saved.handler,
            Disposition::Default => libc::SIG_DFL,
            Disposition::Ignore => libc::SIG_IGN,
        }
    }
}

/// The parts of a `sigaction` that decide a delivery. `mask` is the whole of
/// the kernel's signal set on x86-64 (64 signals); glibc's `sigset_t` is larger
/// but passes only these 8 bytes on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in super::super) struct Action {
    pub(in super::super) handler: usize,
    pub(in super::super) flags: c_int,
    pub(in super::super) mask: u64,
}

impl Action {
    pub(in super::super) fn of(action: &libc::sigaction) -> Action {
        // SAFETY: sigset_t is at least 8 bytes of plain data, 8-aligned.
        let mask = unsafe { ptr::from_ref(&action.sa_mask).cast::<u64>().read() };
        let (handler, flags) = (action.sa_sigaction, action.sa_flags);
        Action {
            handler,
            flags,
            mask,
        }
    }

    pub(in super::super) fn to_sigaction(self) -> libc::sigaction {
        // SAFETY: all-zero is a valid sigaction (SIG_DFL, no flags, empty mask).
        let mut action: libc::sigaction = unsafe { MaybeUninit::zeroed().assume_init() };
        action.sa_sigaction = self.handler;
        action.sa_flags = self.flags;
        // SAFETY: as in `of`.
        unsafe {
            ptr::from_mut(&mut action.sa_mask)
                .cast::<u64>()
                .write(self.mask)
        };
        action
    }
}

/// mcsafe's action over `previous` (rule 2). Over `SIG_DFL` or `SIG_IGN` there
/// is no handler to imitate: the alternate stack when the thread has one (a
/// fault may come from a thread whose stack is nearly full) and `SA_RESTART`
/// (a system call a passed-on signal interrupts goes on, as it would have).
pub(in super::super) fn our_action(previous: Action) -> Action {
    let copied = libc::SA_NODEFER | libc::SA_ONSTACK | libc::SA_RESTART;
    let (flags, mask) = match previous.handler {
        libc::SIG_DFL | libc::SIG_IGN => (libc::SA_ONSTACK | libc::SA_RESTART, 0),
        _ => (previous.flags & copied, previous.mask),
    };
    let handler = super::entry as *const () as usize;
    Action {
        handler,
        flags: flags | libc::SA_SIGINFO,
        mask,
    }
}

/// Two write-once slots, each (previous action, mcsafe's), and how many are
/// published. `install` (once, on one thread) fills the first before mcsafe's
/// handler goes live, and the second only if another thread changed the action
/// between its query and its `sigaction`. A slot is complete before it is
/// published and never written again, so a reader never sees half of one.
pub(in super::super) struct Saved {
    slots: [Pair; 2],
    published: AtomicUsize,
}

struct Pair {
    previous: [AtomicU64; 3],
    ours: [AtomicU64; 3],
}

impl Pair {
    const fn empty() -> Pair {
        Pair {
            previous: [const { AtomicU64::new(0) }; 3],
            ours: [const { AtomicU64::new(0) }; 3],
        }
    }
}

fn put(words: &[AtomicU64; 3], action: Action) {
    let [handler, flags, mask] = words;
    handler.store(action.handler as u64, Relaxed);
    flags.store(action.flags as u32 as u64, Relaxed);
    mask.store(action.mask, Relaxed);
}

fn take(words: &[AtomicU64; 3]) -> Action {
    let [handler, flags, mask] = words;
    Action {
        handler: handler.load(Relaxed) as usize,
        flags: flags.load(Relaxed) as u32 as c_int,
        mask: mask.load(Relaxed),
    }
}

impl Saved {
    /// For `install` only; a third call is ignored (install makes at most two).
    pub(in super::super) fn publish(&self, previous: Action, ours: Action) {
        let n = self.published.load(Relaxed);
        if let Some(slot) = self.slots.get(n) {
            put(&slot.previous, previous);
            put(&slot.ours, ours);
            self.published.store(n.wrapping_add(1), Release);
        }
    }

    /// (previous, ours), or `None` before `install` published any.
    pub(in super::super) fn load(&self) -> Option<(Action, Action)> {
        let n = self.published.load(Acquire);
        let slot = self.slots.get(n.checked_sub(1)?)?;
        Some((take(&slot.previous), take(&slot.ours)))
    }
}

/// The current SIGBUS action (async-signal-safe).
pub(in super::super) fn current_action() -> Option<Action> {
    let mut action = MaybeUninit::<libc::sigaction>::zeroed();
    // SAFETY: a null new action only queries; `action` is writable.
    let queried = unsafe { libc::sigaction(libc::SIGBUS, ptr::null(), action.as_mut_ptr()) };
    // SAFETY: zeroed, then filled in by sigaction.
    (queried == 0).then(|| Action::of(&unsafe { action.assume_init() }))
}
