//! What `std` would otherwise give the component: an allocator, the
//! canonical ABI's `cabi_realloc`, and a panic that traps.
//!
//! The allocator is an arena: a call's allocations are carved one after
//! the other from the linear memory past the program's data, and the arena
//! starts again once every one of them is freed, which happens by the end
//! of each `decide` (the host frees nothing it lowered into the guest
//! afterwards, and the policy keeps nothing on the heap between calls).
//! Under paygate every call has a fresh instance anyway; the reset keeps a
//! host that reuses instances from growing the memory call after call. A
//! general allocator (`dlmalloc`) made a fresh call slower than `std` did
//! (docs/benchmarks/notes/plugins.md).

use core::alloc::{GlobalAlloc, Layout};
use core::arch::wasm32;
use core::cell::Cell;
use core::ptr;

/// Bytes in one page of linear memory.
const PAGE: usize = 64 << 10;

unsafe extern "C" {
    /// Where the linker put the end of the program's data and stack.
    static __heap_base: u8;
}

/// The arena's state. Guest code runs on one thread, so plain cells do.
struct Arena {
    /// The next free byte, or 0 before the first allocation.
    next: Cell<usize>,
    /// The end of the linear memory as far as the arena knows.
    end: Cell<usize>,
    /// Allocations not yet freed.
    live: Cell<usize>,
}

// SAFETY: a core wasm module without the threads proposal has one thread.
unsafe impl Sync for Arena {}

#[global_allocator]
static ARENA: Arena = Arena {
    next: Cell::new(0),
    end: Cell::new(0),
    live: Cell::new(0),
};

impl Arena {
    /// The start of the free memory when nothing is allocated.
    fn base() -> usize {
        ptr::addr_of!(__heap_base) as usize
    }

    /// Makes `[start, start + size)` usable, growing the memory if needed.
    fn reserve(&self, start: usize, size: usize) -> bool {
        let Some(wanted) = start.checked_add(size) else {
            return false;
        };
        if self.end.get() == 0 {
            self.end.set(wasm32::memory_size(0) * PAGE);
        }
        if wanted > self.end.get() {
            let pages = (wanted - self.end.get()).div_ceil(PAGE);
            if wasm32::memory_grow(0, pages) == usize::MAX {
                return false;
            }
            self.end.set(self.end.get() + pages * PAGE);
        }
        self.next.set(wanted);
        true
    }
}

unsafe impl GlobalAlloc for Arena {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let next = match self.next.get() {
            0 => Self::base(),
            n => n,
        };
        // `Layout` guarantees a power-of-two alignment.
        let Some(start) = next.checked_next_multiple_of(layout.align()) else {
            return ptr::null_mut();
        };
        if !self.reserve(start, layout.size()) {
            return ptr::null_mut();
        }
        self.live.set(self.live.get() + 1);
        start as *mut u8
    }

    unsafe fn dealloc(&self, block: *mut u8, layout: Layout) {
        let live = self.live.get() - 1;
        self.live.set(live);
        if live == 0 {
            self.next.set(Self::base());
        } else if block as usize + layout.size() == self.next.get() {
            // The newest block: its bytes can be handed out again.
            self.next.set(block as usize);
        }
    }

    unsafe fn realloc(&self, block: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if block as usize + layout.size() == self.next.get() {
            // The newest block grows (or shrinks) where it is.
            return if self.reserve(block as usize, new_size) {
                block
            } else {
                ptr::null_mut()
            };
        }
        // SAFETY: the caller's contract for `realloc` is `alloc`'s for the
        // new layout, which has the old alignment.
        let moved =
            unsafe { self.alloc(Layout::from_size_align_unchecked(new_size, layout.align())) };
        if !moved.is_null() {
            // SAFETY: both blocks are live and distinct (the new one was
            // carved past the old one's end), and the copy stays within both.
            unsafe {
                ptr::copy_nonoverlapping(block, moved, layout.size().min(new_size));
                self.dealloc(block, layout);
            }
        }
        moved
    }
}

/// A panic traps; the host reports the trap and applies its own policy.
#[panic_handler]
fn panic(_: &core::panic::PanicInfo) -> ! {
    wasm32::unreachable()
}

/// The canonical ABI's allocation entry point, through which the host
/// lowers strings and lists into the guest. On `wasm32-wasip2` it is
/// `std`'s to export, so without `std` the component exports its own.
///
/// # Safety
/// Called by the host with the canonical ABI's arguments: `old` is null or
/// a block of `old_len` bytes at `align` that this function returned.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn cabi_realloc(
    old: *mut u8,
    old_len: usize,
    align: usize,
    new_len: usize,
) -> *mut u8 {
    let block = if old_len == 0 {
        if new_len == 0 {
            // A zero-sized block: any non-null, aligned address.
            return align as *mut u8;
        }
        // SAFETY: the canonical ABI passes a power-of-two alignment.
        unsafe { ARENA.alloc(Layout::from_size_align_unchecked(new_len, align)) }
    } else {
        // SAFETY: `old` is a live block of this layout (see above).
        unsafe {
            ARENA.realloc(
                old,
                Layout::from_size_align_unchecked(old_len, align),
                new_len,
            )
        }
    };
    if block.is_null() {
        wasm32::unreachable()
    }
    block
}
