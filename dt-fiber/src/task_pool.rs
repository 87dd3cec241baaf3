//! Recycled allocations for fiber futures.
//!
//! Every fiber's future lives in its own heap block. A dispatcher starting and ending
//! fibers at a high rate would otherwise pay a `malloc` and a `free` per fiber (measured
//! at about an eighth of the instructions of a spawn-and-finish cycle). The blocks of
//! finished fibers are kept per layout (a few layouts, a few blocks each) and handed to
//! new fibers of the same layout.

use std::alloc::{dealloc, Layout};
use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::NonNull;

/// A fiber's future.
pub(crate) type Task = Pin<Box<dyn Future<Output = ()>>>;

/// Most distinct layouts kept.
const MAX_LAYOUTS: usize = 16;
/// Most blocks kept per layout.
const MAX_BLOCKS: usize = 64;

/// Free blocks by layout. Each block was allocated by the global allocator with its
/// layout and holds no value.
#[derive(Default)]
pub(crate) struct TaskPool {
    /// The last freed block: the common case of fibers of one kind started and ended in
    /// turn costs no list search.
    last: Cell<Option<(Layout, NonNull<u8>)>>,
    lists: RefCell<Vec<(Layout, Vec<NonNull<u8>>)>>,
}

impl TaskPool {
    /// Boxes and pins `fut`, reusing a free block of its layout if there is one.
    #[inline]
    pub(crate) fn boxed<F: Future<Output = ()> + 'static>(&self, fut: F) -> Task {
        let layout = Layout::new::<F>();
        if layout.size() != 0 {
            if let Some(block) = self.take(layout) {
                let p = block.as_ptr() as *mut F;
                // SAFETY: `block` was allocated by the global allocator with `layout`,
                // which is `Layout::new::<F>()`, and holds no value (the previous one was
                // dropped in place before the block was kept). Writing `fut` makes it a
                // valid `F` owned by nobody else, which is what `Box::from_raw` requires.
                let b = unsafe {
                    p.write(fut);
                    Box::from_raw(p)
                };
                return Box::into_pin(b);
            }
        }
        Box::pin(fut)
    }

    #[inline]
    fn take(&self, layout: Layout) -> Option<NonNull<u8>> {
        if let Some((l, b)) = self.last.get() {
            if l == layout {
                self.last.set(None);
                return Some(b);
            }
        }
        self.take_listed(layout)
    }

    fn take_listed(&self, layout: Layout) -> Option<NonNull<u8>> {
        let mut lists = self.lists.borrow_mut();
        lists.iter_mut().find(|(l, _)| *l == layout)?.1.pop()
    }

    /// Keeps a free block (allocated by the global allocator with `layout`, holding no
    /// value), freeing the block it displaces if there is no room for that one.
    fn put(&self, layout: Layout, block: NonNull<u8>) {
        let Some((layout, block)) = self.last.replace(Some((layout, block))) else {
            return;
        };
        let mut lists = self.lists.borrow_mut();
        if let Some((_, v)) = lists.iter_mut().find(|(l, _)| *l == layout) {
            if v.len() < MAX_BLOCKS {
                v.push(block);
                return;
            }
        } else if lists.len() < MAX_LAYOUTS {
            lists.push((layout, vec![block]));
            return;
        }
        // SAFETY: kept blocks were allocated by the global allocator with their layout
        // and hold no value; this one is no longer kept anywhere.
        unsafe { dealloc(block.as_ptr(), layout) };
    }

    /// Drops a fiber's future in place and keeps (or frees) its block. A panic from the
    /// future's destructors is caught and returned.
    pub(crate) fn drop_task(&self, task: Task) -> Result<(), Box<dyn Any + Send>> {
        let layout = Layout::for_value::<dyn Future<Output = ()>>(&*task);
        if layout.size() == 0 {
            return catch_unwind(AssertUnwindSafe(move || drop(task)));
        }
        // SAFETY: the value is not moved: only the pointer is taken out of the pinned
        // box, the value is dropped in place below and only then is the memory reused or
        // freed, as the `Pin` contract requires.
        let raw: *mut dyn Future<Output = ()> =
            Box::into_raw(unsafe { Pin::into_inner_unchecked(task) });
        // SAFETY: `raw` comes from `Box::into_raw`: it points to a valid value that we
        // own, and it is dropped exactly once, here.
        let r = catch_unwind(AssertUnwindSafe(|| unsafe { std::ptr::drop_in_place(raw) }));
        if let Some(block) = NonNull::new(raw as *mut u8) {
            self.put(layout, block);
        }
        r
    }
}

impl Drop for TaskPool {
    fn drop(&mut self) {
        if let Some((layout, b)) = self.last.take() {
            // SAFETY: the kept block was allocated by the global allocator with `layout`
            // and holds no value; it is freed once, here.
            unsafe { dealloc(b.as_ptr(), layout) };
        }
        for (layout, blocks) in self.lists.get_mut().drain(..) {
            for b in blocks {
                // SAFETY: every kept block was allocated by the global allocator with
                // `layout` and holds no value; it is freed once, here.
                unsafe { dealloc(b.as_ptr(), layout) };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;

    #[test]
    fn blocks_are_reused_per_layout_and_values_dropped_once() {
        let pool = TaskPool::default();
        let drops = Rc::new(Cell::new(0));
        struct D(Rc<Cell<u32>>, [u64; 4]);
        impl Drop for D {
            fn drop(&mut self) {
                std::hint::black_box(&self.1);
                self.0.set(self.0.get() + 1);
            }
        }
        let d = D(drops.clone(), [1; 4]);
        let t = pool.boxed(async move {
            let _keep = &d;
        });
        let first = &*t as *const dyn Future<Output = ()> as *const u8;
        assert!(pool.drop_task(t).is_ok());
        assert_eq!(drops.get(), 1);
        let d = D(drops.clone(), [2; 4]);
        let t = pool.boxed(async move {
            let _keep = &d;
        });
        let second = &*t as *const dyn Future<Output = ()> as *const u8;
        assert_eq!(first, second, "same layout reuses the block");
        assert!(pool.drop_task(t).is_ok());
        assert_eq!(drops.get(), 2);
        // A zero-sized future and a panicking destructor.
        assert!(pool.drop_task(pool.boxed(async {})).is_ok());
        struct P;
        impl Drop for P {
            fn drop(&mut self) {
                panic!("boom");
            }
        }
        let p = P;
        let t = pool.boxed(async move {
            let _keep = &p;
        });
        assert!(pool.drop_task(t).is_err());
        // Many blocks of two layouts go through the lists and come back.
        for round in 0..3u64 {
            let mut tasks = Vec::new();
            for i in 0..100u64 {
                let (a, b) = ([i; 2], [round; 9]);
                tasks.push(pool.boxed(async move {
                    let _keep = &a;
                }));
                tasks.push(pool.boxed(async move {
                    let _keep = &b;
                }));
            }
            for t in tasks {
                assert!(pool.drop_task(t).is_ok());
            }
        }
    }
}
