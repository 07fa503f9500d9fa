//! Waiting on the GPU without blocking: error scopes turned into [`Error::Gpu`], and buffer
//! mapping as a future. The decoder's own tools, public for code that runs its own kernels
//! beside it (exprans-infer, the browser crate).
//!
//! On native targets the futures drive the device with a blocking `Device::poll`; in a browser
//! the poll is a no-op and the mapping callback arrives from the event loop.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::{Error, Result};

/// The errors captured by [`capture`]: resolves to the first one.
pub type Errors = Pin<Box<dyn Future<Output = Result<()>>>>;

/// Runs `f` inside out-of-memory, validation and internal error scopes. Returns its value and a
/// future resolving to the first captured error, prefixed with `what`.
///
/// The scopes are pushed and popped here, around synchronous code only: wgpu's scope stack is
/// thread-local, and its guard must not live across an `.await`.
pub fn capture<T>(
    device: &wgpu::Device,
    what: impl Into<String>,
    f: impl FnOnce() -> T,
) -> (T, Errors) {
    let what = what.into();
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let internal = device.push_error_scope(wgpu::ErrorFilter::Internal);
    let value = f();
    let popped = [internal.pop(), validation.pop(), oom.pop()];
    let errors = async move {
        for scope in popped {
            if let Some(e) = scope.await {
                return Err(gpu_error(&what, e));
            }
        }
        Ok(())
    };
    let errors: Errors = Box::pin(errors);
    (value, errors)
}

/// A wgpu error as one line: its causes joined with ": ".
fn gpu_error(what: &str, e: wgpu::Error) -> Error {
    if let wgpu::Error::OutOfMemory { .. } = e {
        return Error::Gpu(format!("{what}: out of GPU memory"));
    }
    let text = e.to_string();
    let causes: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && *l != "Caused by:")
        .collect();
    Error::Gpu(format!("{what}: {}", causes.join(": ")))
}

/// Maps every buffer for reading and waits until all are mapped.
pub async fn map_read(device: &wgpu::Device, buffers: &[&wgpu::Buffer]) -> Result<()> {
    let receivers: Vec<_> = buffers
        .iter()
        .map(|buffer| {
            let (tx, rx) = oneshot();
            buffer.map_async(wgpu::MapMode::Read, .., move |r| tx.send(r));
            rx
        })
        .collect();
    wait(device)?;
    for rx in receivers {
        rx.await
            .map_err(|e| Error::Gpu(format!("reading results back failed (device lost?): {e}")))?;
    }
    Ok(())
}

/// Maps `buffer` (`MAP_READ`, its copies submitted) and returns its bytes.
pub async fn read(device: &wgpu::Device, buffer: &wgpu::Buffer) -> Result<Vec<u8>> {
    map_read(device, &[buffer]).await?;
    let bytes = buffer
        .get_mapped_range(..)
        .map_err(|e| Error::Gpu(format!("reading results back failed: {e}")))?
        .to_vec();
    buffer.unmap();
    Ok(bytes)
}

/// Blocks until the device has finished its submitted work (a no-op in a browser).
pub fn wait(device: &wgpu::Device) -> Result<()> {
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map(drop)
        .map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {e}")))
}

/// The sending half of a one-value channel (for wgpu callbacks).
struct Sender<T>(Arc<Mutex<Slot<T>>>);

/// The receiving half: a future of the sent value.
struct Receiver<T>(Arc<Mutex<Slot<T>>>);

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
}

fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
    }));
    (Sender(slot.clone()), Receiver(slot))
}

impl<T> Sender<T> {
    fn send(self, value: T) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.value = Some(value);
        if let Some(waker) = slot.waker.take() {
            waker.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = T;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match slot.value.take() {
            Some(value) => Poll::Ready(value),
            None => {
                slot.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
