//! Error scopes and buffer read-back for the inference code (the same pattern as the decoder's
//! private `gpu::sync`): native targets block in `Device::poll`, a browser resolves the mapping
//! from its event loop.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use crate::{Error, Result};

/// Runs `f` inside out-of-memory and validation error scopes; returns its value and a future of
/// the first captured error, prefixed with `what`. (Scopes are pushed and popped around
/// synchronous code only: the scope stack is thread-local.)
pub(crate) fn capture<T>(
    device: &wgpu::Device,
    what: &'static str,
    f: impl FnOnce() -> T,
) -> (T, impl Future<Output = Result<()>>) {
    let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let validation = device.push_error_scope(wgpu::ErrorFilter::Validation);
    let value = f();
    let popped = [validation.pop(), oom.pop()];
    let errors = async move {
        for scope in popped {
            if let Some(e) = scope.await {
                return Err(Error::Gpu(format!("{what}: {e}")));
            }
        }
        Ok(())
    };
    (value, errors)
}

/// Maps `buffer` (MAP_READ, whose copies have been submitted) and returns its bytes.
pub(crate) async fn read(device: &wgpu::Device, buffer: &wgpu::Buffer) -> Result<Vec<u8>> {
    let slot = Arc::new(Mutex::new(Slot::default()));
    let sender = slot.clone();
    buffer.map_async(wgpu::MapMode::Read, .., move |r| {
        let mut s = sender.lock().unwrap_or_else(|e| e.into_inner());
        s.value = Some(r.is_ok());
        if let Some(w) = s.waker.take() {
            w.wake();
        }
    });
    device
        .poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| Error::Gpu(format!("waiting for the GPU failed: {e}")))?;
    if !(Mapped { slot }).await {
        return Err(Error::Gpu(
            "reading results back failed (device lost?)".into(),
        ));
    }
    let bytes = buffer
        .get_mapped_range(..)
        .map_err(|e| Error::Gpu(format!("reading results back failed: {e}")))?
        .to_vec();
    buffer.unmap();
    Ok(bytes)
}

#[derive(Default)]
struct Slot {
    value: Option<bool>,
    waker: Option<Waker>,
}

struct Mapped {
    slot: Arc<Mutex<Slot>>,
}

impl Future for Mapped {
    type Output = bool;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        let mut s = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        match s.value {
            Some(ok) => Poll::Ready(ok),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}
