//! Adapters and devices: what `exprans devices` lists, and opening a device for the decoder.

use crate::{Error, Result};

/// What one adapter offers the decoder, as plain data.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AdapterSummary {
    /// Graphics API: `Vulkan`, `Metal`, `Dx12`, `Gl`, `BrowserWebGpu`.
    pub backend: String,
    /// Adapter name, e.g. `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// `DiscreteGpu`, `IntegratedGpu`, `VirtualGpu`, `Cpu` or `Other`.
    pub device_type: String,
    /// Driver name and version, where the backend reports them.
    pub driver: String,
    /// Whether the adapter has `wgpu::Features::SUBGROUP` (the decoder's subgroup path).
    pub subgroups: bool,
    /// Smallest subgroup size the adapter may use.
    pub subgroup_min_size: u32,
    /// Largest subgroup size the adapter may use.
    pub subgroup_max_size: u32,
    /// Whether the adapter has `wgpu::Features::TIMESTAMP_QUERY` (GPU-timed benchmarks).
    pub timestamp_query: bool,
    /// Largest storage-buffer binding, in bytes: larger tensors are decoded in pieces.
    pub max_storage_buffer_binding_size: u64,
    /// Largest buffer, in bytes.
    pub max_buffer_size: u64,
    /// Largest dispatch along one dimension, in workgroups.
    pub max_compute_workgroups_per_dimension: u32,
    /// Most invocations in one workgroup.
    pub max_compute_invocations_per_workgroup: u32,
    /// Workgroup memory, in bytes.
    pub max_compute_workgroup_storage_size: u32,
}

impl AdapterSummary {
    /// The summary of `adapter`.
    pub fn of(adapter: &wgpu::Adapter) -> AdapterSummary {
        let info = adapter.get_info();
        let features = adapter.features();
        let limits = adapter.limits();
        AdapterSummary {
            backend: format!("{:?}", info.backend),
            name: info.name,
            device_type: format!("{:?}", info.device_type),
            driver: [info.driver, info.driver_info]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect::<Vec<_>>()
                .join(" "),
            subgroups: features.contains(wgpu::Features::SUBGROUP),
            subgroup_min_size: info.subgroup_min_size,
            subgroup_max_size: info.subgroup_max_size,
            timestamp_query: features.contains(wgpu::Features::TIMESTAMP_QUERY),
            max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
            max_buffer_size: limits.max_buffer_size,
            max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
            max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
            max_compute_workgroup_storage_size: limits.max_compute_workgroup_storage_size,
        }
    }
}

/// A wgpu instance over `backends` (`None`: the platform's default set, overridable with the
/// `WGPU_BACKEND` environment variable).
pub(crate) fn instance(backends: Option<wgpu::Backends>) -> wgpu::Instance {
    let desc = wgpu::InstanceDescriptor::new_without_display_handle();
    let desc = match backends {
        Some(backends) => wgpu::InstanceDescriptor { backends, ..desc },
        None => desc.with_env(),
    };
    wgpu::Instance::new(desc)
}

/// Every adapter of `backends`, summarized (for `exprans devices`).
pub async fn list_adapters(backends: wgpu::Backends) -> Vec<AdapterSummary> {
    instance(Some(backends))
        .enumerate_adapters(backends)
        .await
        .iter()
        .map(AdapterSummary::of)
        .collect()
}

/// The message for "no adapter", with how to get one.
pub(crate) fn no_adapter(detail: impl std::fmt::Display) -> Error {
    Error::Gpu(format!(
        "no GPU adapter found ({detail}); on Linux without a GPU, install a software Vulkan \
         driver: apt-get install -y mesa-vulkan-drivers"
    ))
}

/// Opens the default adapter of `backends` and a device on it (see [`open_device`]).
pub(crate) async fn open(
    backends: Option<wgpu::Backends>,
) -> Result<(wgpu::Adapter, wgpu::Device, wgpu::Queue)> {
    let adapter = instance(backends)
        .request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        })
        .await
        .map_err(no_adapter)?;
    let (device, queue) = open_device(&adapter).await?;
    Ok((adapter, device, queue))
}

/// Opens a device on `adapter` with the features the decoder can use (subgroups, timestamp
/// queries) and the adapter's own limits.
pub(crate) async fn open_device(adapter: &wgpu::Adapter) -> Result<(wgpu::Device, wgpu::Queue)> {
    let wanted = wgpu::Features::SUBGROUP | wgpu::Features::TIMESTAMP_QUERY;
    adapter
        .request_device(&wgpu::DeviceDescriptor {
            label: Some("exprans"),
            required_features: adapter.features() & wanted,
            required_limits: adapter.limits(),
            ..Default::default()
        })
        .await
        .map_err(|e| {
            Error::Gpu(format!(
                "cannot open a device on {}: {e}",
                adapter.get_info().name
            ))
        })
}

/// Every adapter of `backends` (for checking each of them, as `exprans selftest` does).
pub async fn all_adapters(backends: wgpu::Backends) -> Vec<wgpu::Adapter> {
    instance(Some(backends)).enumerate_adapters(backends).await
}
