//! The non-matrix kernels of a model (normalizations, attention, element-wise steps): one WGSL
//! module whose entry points share one bind group layout ([`crate::shaders::OPS_BINDINGS`]:
//! a uniform of parameters `P`, inputs `a`, `b`, `c`, 16-bit vectors `gamma`, `beta`, output
//! `out`), compiled once per model and bound once per step.

use crate::matvec::{self, buffer, entry};
use crate::shaders::{Module, OPS_BINDINGS};

/// The compiled entry points of one ops module.
#[derive(Clone, Debug)]
pub(crate) struct OpKernels {
    layout: wgpu::BindGroupLayout,
    /// Pipelines in the order of the module's entry points.
    pipelines: Vec<wgpu::ComputePipeline>,
    /// Bound where a step has no buffer.
    dummy: wgpu::Buffer,
}

/// The buffers of an [`OpCall`]: inputs `a`, `b`, `c`, 16-bit vectors `gamma`, `beta`, and the
/// output (always bound).
#[derive(Default)]
pub(crate) struct OpBuffers<'a> {
    pub(crate) a: Option<&'a wgpu::Buffer>,
    pub(crate) b: Option<&'a wgpu::Buffer>,
    pub(crate) c: Option<&'a wgpu::Buffer>,
    pub(crate) gamma: Option<&'a wgpu::Buffer>,
    pub(crate) beta: Option<&'a wgpu::Buffer>,
    pub(crate) out: Option<&'a wgpu::Buffer>,
}

/// One bound step: entry point, parameters (rewritten before each pass) and buffers.
#[derive(Clone, Debug)]
pub(crate) struct OpCall<P> {
    pub(crate) params: P,
    uniform: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    pipeline: wgpu::ComputePipeline,
}

impl OpKernels {
    /// Compiles `module` (errors surface through the caller's error scope).
    pub(crate) fn new(device: &wgpu::Device, module: Module) -> OpKernels {
        let layout = matvec::storage_layout(device, module.label(), &OPS_BINDINGS);
        let shader = module.create(device);
        OpKernels {
            pipelines: module
                .entry_points()
                .iter()
                .map(|e| matvec::pipeline(device, &layout, &shader, e))
                .collect(),
            dummy: buffer(
                device,
                "exprans unused binding",
                16,
                wgpu::BufferUsages::STORAGE,
            ),
            layout,
        }
    }

    /// Binds entry point number `kernel` to `buffers`, with parameters `params`.
    pub(crate) fn call<P: bytemuck::Pod>(
        &self,
        device: &wgpu::Device,
        kernel: usize,
        params: P,
        buffers: OpBuffers,
    ) -> OpCall<P> {
        let uniform = buffer(
            device,
            "exprans op params",
            std::mem::size_of::<P>() as u64,
            wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        );
        let or_dummy = |b: Option<&'_ wgpu::Buffer>| b.unwrap_or(&self.dummy).clone();
        let bound = [
            or_dummy(buffers.a),
            or_dummy(buffers.b),
            or_dummy(buffers.c),
            or_dummy(buffers.gamma),
            or_dummy(buffers.beta),
            buffers.out.expect("every op writes").clone(),
        ];
        let mut entries = vec![entry(0, &uniform)];
        entries.extend(bound.iter().zip(1..).map(|(b, i)| entry(i, b)));
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("exprans op"),
            layout: &self.layout,
            entries: &entries,
        });
        OpCall {
            params,
            uniform,
            bind_group,
            pipeline: self.pipelines[kernel].clone(),
        }
    }
}

impl<P: bytemuck::Pod> OpCall<P> {
    /// Writes `params` for the next submission (a queue write).
    pub(crate) fn set_params(&self, queue: &wgpu::Queue, params: &P) {
        queue.write_buffer(&self.uniform, 0, bytemuck::bytes_of(params));
    }

    /// Records the dispatch of `groups` workgroups.
    pub(crate) fn dispatch(&self, pass: &mut wgpu::ComputePass, groups: [u32; 3]) {
        if groups.contains(&0) {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(groups[0], groups[1], groups[2]);
    }
}
