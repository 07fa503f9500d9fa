//! A GPU device with the kernels models share, compiled once.

use std::sync::Mutex;

use exprans::gpu::sync as wait;
use exprans::gpu::GpuDecoder;
use exprans::Result;

use crate::matvec::MatrixKernels;
use crate::ops::OpKernels;
use crate::shaders::Module;

/// A device with everything a model needs: the GPU decoder (which owns the device), the matrix
/// kernels, and each model family's other kernels, compiled the first time a model asks.
#[derive(Debug)]
pub struct GpuContext {
    decoder: GpuDecoder,
    matrices: MatrixKernels,
    /// Compiled ops modules; at most one entry per module.
    ops: Mutex<Vec<(Module, OpKernels)>>,
}

impl GpuContext {
    /// Compiles the matrix kernels on the decoder's device.
    pub async fn new(decoder: GpuDecoder) -> Result<GpuContext> {
        let matrices = MatrixKernels::new(decoder.device()).await?;
        Ok(GpuContext {
            decoder,
            matrices,
            ops: Mutex::new(Vec::new()),
        })
    }

    /// The device.
    pub fn device(&self) -> &wgpu::Device {
        self.decoder.device()
    }

    /// The queue.
    pub fn queue(&self) -> &wgpu::Queue {
        self.decoder.queue()
    }

    /// The GPU decoder.
    pub fn decoder(&self) -> &GpuDecoder {
        &self.decoder
    }

    /// The matrix kernels.
    pub fn matrix_kernels(&self) -> &MatrixKernels {
        &self.matrices
    }

    /// The kernels of ops module `module`, compiled on first use.
    pub(crate) async fn op_kernels(&self, module: Module) -> Result<OpKernels> {
        let cached = |ops: &Vec<(Module, OpKernels)>| {
            ops.iter()
                .find(|(m, _)| *m == module)
                .map(|(_, k)| k.clone())
        };
        if let Some(k) = cached(&self.ops.lock().unwrap_or_else(|p| p.into_inner())) {
            return Ok(k);
        }
        let what = format!("compiling {}", module.label());
        let (kernels, errors) = wait::capture(self.device(), what, || {
            OpKernels::new(self.device(), module)
        });
        errors.await?;
        let mut ops = self.ops.lock().unwrap_or_else(|p| p.into_inner());
        if cached(&ops).is_none() {
            ops.push((module, kernels.clone()));
        }
        Ok(kernels)
    }
}
